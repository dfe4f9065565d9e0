"""Parsing photos: reading (images), face framing (framing), batched inference (parser),
the ``parse`` / ``parse_many`` API (api) and the files the command writes (outputs)."""
