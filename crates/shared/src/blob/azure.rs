//! `AzureBlobStore` over the GA `azure_storage_blob` crate (to be written).
