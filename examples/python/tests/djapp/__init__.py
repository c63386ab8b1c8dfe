"""A Django app for the modelpack tests: djangobench's models plus models
with converters, hooks, files, proxies and multi-table inheritance."""
