"""Reading users' files safely and writing ours atomically: regular files only, sizes from the
file's bytes, bounded work (`limits`), `torch.save` files and HDF5 checked before any read."""
