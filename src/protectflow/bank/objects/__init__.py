"""The bank's first layer: an object store of sealed objects under paths.

:class:`~protectflow.bank.objects.store.Bank` writes and reads objects
(atomically each) through a back-end (:mod:`._backend`: a local folder or any
fsspec file system); every object is compressed, encrypted and authenticated
(:mod:`.crypto`) under the bank's master key, which :mod:`.keys` and
:mod:`._keystore` keep outside the bank (a key file in a checked folder,
:mod:`._keyfiles`, or wrapped by a password, :mod:`._passwords`);
:mod:`.rekey` moves an object from one key to another, for a key rotation
(:mod:`protectflow.bank.rotation`). Nothing here knows chunks or checkpoints.
"""
