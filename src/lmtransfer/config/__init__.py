"""Run configs: the schema, reading YAML with line numbers, resolution, and compare sections.

``loading.load_config`` reads a file and overrides; ``build.build`` validates data against ``schema`` and
hands it to ``resolve.resolve``, the one place where a config gets its final values.
"""
