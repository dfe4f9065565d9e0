"""Training: the stages (:mod:`.stages`), one jitted step (:mod:`.step`), scoring a split
(:mod:`.evaluate`), one stage's epochs (:mod:`.loop`), a whole run (:mod:`.run`), and
checkpoints, metric logs and devices/hosts beside them."""
