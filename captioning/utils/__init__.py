"""Low-level helpers: atomic writes, default paths, package resources, run folders,
provenance and quiet TensorFlow start-up. They import nothing else of the package but errors."""
