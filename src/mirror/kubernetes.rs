//! Images named in Kubernetes YAML (Sinker's `create`/`update`): what
//! `promoter import kubernetes` turns into a mirroring intent.
