"""The feature cache, along its seams: the key, the on-disk layout, int8 quantisation, the writer, the
reader, and the commands that list, verify and remove caches."""
