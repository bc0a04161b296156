"""`postlab run` presets that are recipes of their own (the default and tiny presets live in postlab.run)."""
