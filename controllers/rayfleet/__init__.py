"""RayClusterFleet and RayClusterReplicaSet: Deployment-like fleets of multi-node Ray clusters."""
