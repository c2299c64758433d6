"""KVCache (orchestration.brix.dev/v1alpha1): the KV block pool's servers (kvcache/) as a StatefulSet."""
