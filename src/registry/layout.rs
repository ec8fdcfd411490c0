//! `oci:PATH` trees of OCI image layouts.
