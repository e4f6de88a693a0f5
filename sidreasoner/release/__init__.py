"""Released data and checkpoints: fetch (hub, HTTP archive or a local download), install and check them."""
