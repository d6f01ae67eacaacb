"""The Nova-compatible HTTP facade: Nova's compute API for host state, served from a watch cache.

Its modules are imported where used (app.create_app, config.FacadeConfig): the other processes'
command line names the facade's options without loading it.
"""
