"""Bench on a device over SSH: registry (:mod:`.devices`), transport (:mod:`.ssh`), provisioning
(:mod:`.provision`), content-addressed pushes (:mod:`.push`), the device-side agent (:mod:`.agent`) and the
remote bench (:mod:`.remote_bench`). Torch-free; the device side needs only the standard library."""
