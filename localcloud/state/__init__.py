"""What the local cloud keeps on disk: its records (``store``), written so a crash leaves the old or the new
content (``durable``), and the log of API requests that tests and benchmarks count (``requestlog``).
"""
