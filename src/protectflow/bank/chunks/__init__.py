"""The bank's second layer: content-addressed chunks shared by every checkpoint
(:mod:`.store`), and the references that say which checkpoint still needs
which chunk (:mod:`.refs`). Built on the object store; knows no checkpoint
record.
"""
