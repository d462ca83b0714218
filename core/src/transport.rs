//! (filled in by the cluster work)
