//! Where the blob service is, read from the environment (to be written).
