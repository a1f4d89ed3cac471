"""Support for tests: writers of tiny datasets in the real on-disk layouts."""
