"""The bank's third layer: the checkpoint catalog.

A checkpoint's record and status machine (:mod:`.record`), the checkpoint
itself (:mod:`.checkpoint`), the catalog that creates, finds and lists them
(:mod:`.store`), leases (:mod:`.lease`), operation journals (:mod:`.journal`),
run records (:mod:`.runs`), garbage collection (:mod:`.gc`) and the
metadata check (:mod:`.check`). Everything the catalog stores is a typed
document read back through its class's ``from_json``, which refuses a damaged
object naming it (:mod:`.stored`).
"""
