//! OCI Distribution over HTTP.
