"""Package data: ``default.stnw``, the bundled default weights (see README "Parse your photos")."""
