"""Layer 6: whole catalogues: chunked, resumable runs in-process or on Dask."""
