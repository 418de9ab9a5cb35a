"""ASGI entry point for uvicorn: `uvicorn app.asgi:app`."""

import gc

from app.main import create_app

app = create_app()

# What start-up made (modules, mappers, schemas, templates) lives as long as the process. Frozen,
# it is left out of the garbage collector's full collections, which otherwise walk all of it
# every few seconds under load and stall every request meanwhile (60-100 ms each on 2 cores,
# the bulk of labeler_load's p99).
gc.collect()
gc.freeze()
