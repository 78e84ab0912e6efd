"""Layer 0: errors, devices, metrics, file formats and run manifests shared by every layer."""
