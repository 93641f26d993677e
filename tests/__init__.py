"""The test suite; mirrors the package layout (tests/kernels, tests/model, tests/codec, ...)."""
