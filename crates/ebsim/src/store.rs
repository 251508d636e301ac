//! Where source bundles live: S3 (through aws-sdk-s3, path-style) or, for tests, memory.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use std::time::Duration;

use futures_util::future::BoxFuture;

/// Why an object could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// No such bucket or key.
    NotFound,
    /// Anything else (network, permissions…), with a reason.
    Other(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotFound => f.write_str("Not Found"),
            Self::Other(r) => f.write_str(r),
        }
    }
}

/// The object store the emulator reads bundles from.
pub trait Store: Send + Sync {
    /// Creates the bucket unless it exists.
    fn ensure_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Checks that an object exists.
    fn head<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Reads a whole object.
    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, StoreError>>;
    /// Deletes an object.
    fn delete<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Writes an object.
    fn put<'a>(&'a self, bucket: &'a str, key: &'a str, body: Vec<u8>) -> BoxFuture<'a, Result<(), StoreError>>;
    /// A URL anyone holding it can GET the object with until `expires_in` has passed.
    fn presign_get<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        expires_in: Duration,
    ) -> BoxFuture<'a, Result<String, StoreError>>;
}

/// An in-memory store for tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    buckets: Mutex<BTreeSet<String>>,
    objects: Mutex<BTreeMap<(String, String), Vec<u8>>>,
}

impl MemoryStore {
    /// Puts an object (creating its bucket).
    pub fn insert(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).insert(bucket.to_string());
        self.objects.lock().unwrap_or_else(|p| p.into_inner()).insert((bucket.to_string(), key.to_string()), body);
    }

    /// Whether a bucket exists.
    pub fn has_bucket(&self, bucket: &str) -> bool {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).contains(bucket)
    }

    /// Whether an object exists.
    pub fn has(&self, bucket: &str, key: &str) -> bool {
        self.objects.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&(bucket.to_string(), key.to_string()))
    }
}

impl Store for MemoryStore {
    fn ensure_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).insert(bucket.to_string());
        Box::pin(async { Ok(()) })
    }

    fn head<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        let found = self.has(bucket, key);
        Box::pin(async move { if found { Ok(()) } else { Err(StoreError::NotFound) } })
    }

    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, StoreError>> {
        let body =
            self.objects.lock().unwrap_or_else(|p| p.into_inner()).get(&(bucket.to_string(), key.to_string())).cloned();
        Box::pin(async move { body.ok_or(StoreError::NotFound) })
    }

    fn delete<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner()).remove(&(bucket.to_string(), key.to_string()));
        Box::pin(async { Ok(()) })
    }

    fn put<'a>(&'a self, bucket: &'a str, key: &'a str, body: Vec<u8>) -> BoxFuture<'a, Result<(), StoreError>> {
        let known = self.has_bucket(bucket);
        if known {
            self.insert(bucket, key, body);
        }
        Box::pin(async move { if known { Ok(()) } else { Err(StoreError::NotFound) } })
    }

    fn presign_get<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        expires_in: Duration,
    ) -> BoxFuture<'a, Result<String, StoreError>> {
        let url = format!("memory://{bucket}/{key}?X-Amz-Expires={}", expires_in.as_secs());
        Box::pin(async move { Ok(url) })
    }
}

/// S3 through the AWS SDK.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
}

impl S3Store {
    /// A store on `endpoint` (path-style addressing, as local S3 emulators need).
    pub fn new(sdk: &aws_config::SdkConfig, endpoint: Option<&str>) -> Self {
        let mut b = aws_sdk_s3::config::Builder::from(sdk).force_path_style(true);
        if let Some(e) = endpoint {
            b = b.endpoint_url(e);
        }
        Self { client: aws_sdk_s3::Client::from_conf(b.build()) }
    }
}

fn classify<E, R>(err: aws_sdk_s3::error::SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + HttpStatus,
{
    if let Some(resp) = err.raw_response()
        && resp.status_code() == 404
    {
        return StoreError::NotFound;
    }
    StoreError::Other(format!("{}", aws_sdk_s3::error::DisplayErrorContext(&err)))
}

/// Reads the HTTP status out of an SDK raw response.
trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

impl Store for S3Store {
    fn ensure_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            match self.client.head_bucket().bucket(bucket).send().await {
                Ok(_) => Ok(()),
                Err(e) => match classify(e) {
                    StoreError::NotFound => {
                        self.client.create_bucket().bucket(bucket).send().await.map(|_| ()).map_err(classify)
                    }
                    other => Err(other),
                },
            }
        })
    }

    fn head<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(
            async move { self.client.head_object().bucket(bucket).key(key).send().await.map(|_| ()).map_err(classify) },
        )
    }

    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, StoreError>> {
        Box::pin(async move {
            let out = self.client.get_object().bucket(bucket).key(key).send().await.map_err(classify)?;
            let body = out
                .body
                .collect()
                .await
                .map_err(|e| StoreError::Other(format!("failed to read s3://{bucket}/{key}: {e}")))?;
            Ok(body.into_bytes().to_vec())
        })
    }

    fn delete<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.client.delete_object().bucket(bucket).key(key).send().await.map(|_| ()).map_err(classify)
        })
    }

    fn put<'a>(&'a self, bucket: &'a str, key: &'a str, body: Vec<u8>) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.client
                .put_object()
                .bucket(bucket)
                .key(key)
                .content_type("text/plain; charset=utf-8")
                .body(body.into())
                .send()
                .await
                .map(|_| ())
                .map_err(classify)
        })
    }

    fn presign_get<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        expires_in: Duration,
    ) -> BoxFuture<'a, Result<String, StoreError>> {
        Box::pin(async move {
            let cfg = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires_in)
                .map_err(|e| StoreError::Other(format!("invalid presigning expiry {expires_in:?}: {e}")))?;
            let req = self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .presigned(cfg)
                .await
                .map_err(|e| StoreError::Other(format!("failed to presign s3://{bucket}/{key}: {e}")))?;
            Ok(req.uri().to_string())
        })
    }
}
