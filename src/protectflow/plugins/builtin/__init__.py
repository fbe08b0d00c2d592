"""The plugins protectflow ships: ``fs`` (folders), ``sqlite`` (database files),
``app`` (an application frozen while its children are snapshotted) and ``sim``
(a simulated cloud).

They are registered through entry points exactly as third-party plugins are
(``pyproject.toml``), and use nothing of the framework a third-party plugin
could not: the modules beside this one are the helpers they share.
"""
