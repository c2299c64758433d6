"""The KV block pool: `brix kvcache serve`, its client, S3-FIFO / LRU eviction, rendezvous hashing."""
