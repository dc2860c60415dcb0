"""The machinery behind ``muxscope bench`` (see `app.bench`)."""
