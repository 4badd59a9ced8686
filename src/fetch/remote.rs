//! Reading a remote GGUF file's header and tensor index without its weights.
//!
//! GGUF puts the metadata and the tensor index at the start of the file, so
//! `ggviz inspect hf://…` fetches a first slice with an HTTP range request,
//! lets the reader parse it as a prefix of a file of the announced size
//! ([`GgufFile::from_prefix`]) and, while the header goes on past the slice,
//! fetches the rest of what it needs: a few MiB for a model of any size.

use std::io::Read;
use std::path::PathBuf;

use reqwest::blocking::{Client, Response};
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, RANGE};

use super::{FetchError, HfRef, HfSettings, status_hint};
use crate::gguf::{FormatError, GgufError, GgufFile, GgufModel};

/// Bytes asked for first: the whole header of most models.
pub const FIRST_FETCH: u64 = 2 * 1024 * 1024;
/// The longest header ggviz fetches (the largest vocabularies take a few
/// tens of MiB).
pub const MAX_HEADER: u64 = 512 * 1024 * 1024;
/// Most range requests per file; the prefix at least doubles each time, so
/// this is never reached below [`MAX_HEADER`].
const MAX_FETCHES: usize = 16;

/// A remote model's header and index, and what reading them cost.
#[derive(Debug)]
pub struct RemoteModel {
    /// The model, with no tensor data.
    pub model: GgufModel,
    /// Body bytes received over the network.
    pub bytes_transferred: u64,
    /// Range requests made.
    pub requests: usize,
}

/// Reads the header and tensor index of every file of the model `reference`
/// names, with range requests only.
pub fn open(reference: &HfRef, settings: &HfSettings) -> Result<RemoteModel, FetchError> {
    let client = Client::builder()
        .user_agent(concat!("ggviz/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| FetchError::Request {
            url: settings.endpoint.clone(),
            action: "cannot set up the HTTP client".into(),
            source: Box::new(e),
        })?;
    let mut reader = PrefixReader {
        client,
        token: settings.token.clone(),
        bytes: 0,
        requests: 0,
    };
    let mut shards = Vec::new();
    for file in reference.files() {
        let url = reference.url(&settings.endpoint, &file);
        let label = PathBuf::from(format!("hf://{}/{}", reference.repo, file));
        shards.push(reader.header(&url, label, reference)?);
    }
    let model = if shards.len() == 1 {
        GgufModel::from_file(shards.remove(0))
    } else {
        GgufModel::from_shards(shards)?
    };
    Ok(RemoteModel {
        model,
        bytes_transferred: reader.bytes,
        requests: reader.requests,
    })
}

struct PrefixReader {
    client: Client,
    token: Option<String>,
    bytes: u64,
    requests: usize,
}

impl PrefixReader {
    /// Fetches as much of the file at `url` as its header needs, and parses it.
    fn header(
        &mut self,
        url: &str,
        label: PathBuf,
        reference: &HfRef,
    ) -> Result<GgufFile, FetchError> {
        let mut prefix = Vec::new();
        let mut file_size = None;
        let mut want = FIRST_FETCH;
        for _ in 0..MAX_FETCHES {
            let size = self.fetch(url, &mut prefix, want, &mut file_size, reference)?;
            match GgufFile::from_prefix(label.clone(), prefix.clone(), size) {
                Ok(file) => return Ok(file),
                Err(GgufError::Format {
                    kind: FormatError::BeyondPrefix { needed_end, .. },
                    ..
                }) if (prefix.len() as u64) < size => {
                    want = needed_end.max(2 * prefix.len() as u64).min(size);
                    if want > MAX_HEADER {
                        return Err(FetchError::Protocol {
                            url: url.to_owned(),
                            reason: format!(
                                "the GGUF header is longer than {MAX_HEADER} bytes; download \
                                 the file to inspect it"
                            ),
                        });
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(FetchError::Protocol {
            url: url.to_owned(),
            reason: format!("the header was still incomplete after {MAX_FETCHES} range requests"),
        })
    }

    /// Extends `prefix` to `want` bytes (or the file's end) with one range
    /// request; returns the file's size.
    fn fetch(
        &mut self,
        url: &str,
        prefix: &mut Vec<u8>,
        want: u64,
        file_size: &mut Option<u64>,
        reference: &HfRef,
    ) -> Result<u64, FetchError> {
        let start = prefix.len() as u64;
        let end = match *file_size {
            Some(size) => want.min(size),
            None => want,
        };
        if end <= start {
            return Ok(file_size.unwrap_or(start));
        }
        let mut request = self
            .client
            .get(url)
            .header(RANGE, format!("bytes={start}-{}", end - 1));
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        self.requests += 1;
        let response = request.send().map_err(|e| FetchError::Request {
            url: url.to_owned(),
            action: "the range request failed".into(),
            source: Box::new(e),
        })?;
        let status = response.status().as_u16();
        if !response.status().is_success() {
            return Err(FetchError::Http {
                url: url.to_owned(),
                status,
                hint: status_hint(status, &reference.to_string()),
            });
        }
        let size = match status {
            206 => total_from_content_range(&response).ok_or_else(|| FetchError::Protocol {
                url: url.to_owned(),
                reason: "a partial answer without a valid `Content-Range` header".into(),
            })?,
            // A server that ignores ranges sends the whole file: keep
            // only the part asked for and drop the connection.
            _ if start == 0 => content_length(&response).ok_or_else(|| FetchError::Protocol {
                url: url.to_owned(),
                reason: "the server ignores range requests and gives no `Content-Length`".into(),
            })?,
            _ => {
                return Err(FetchError::Protocol {
                    url: url.to_owned(),
                    reason: format!("the server ignored a range request (HTTP {status})"),
                });
            }
        };
        if let Some(known) = *file_size
            && known != size
        {
            return Err(FetchError::Protocol {
                url: url.to_owned(),
                reason: format!("the file's size changed from {known} to {size} bytes"),
            });
        }
        *file_size = Some(size);
        let take = end.min(size) - start;
        let before = prefix.len();
        response
            .take(take)
            .read_to_end(prefix)
            .map_err(|e| FetchError::Request {
                url: url.to_owned(),
                action: "the answer was cut short".into(),
                source: Box::new(e),
            })?;
        self.bytes += (prefix.len() - before) as u64;
        if ((prefix.len() - before) as u64) < take {
            return Err(FetchError::Protocol {
                url: url.to_owned(),
                reason: format!(
                    "asked for {take} bytes from byte {start}, received {}",
                    prefix.len() - before
                ),
            });
        }
        Ok(size)
    }
}

/// The total size in `Content-Range: bytes A-B/TOTAL`.
fn total_from_content_range(response: &Response) -> Option<u64> {
    let value = response.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    value.rsplit_once('/')?.1.trim().parse().ok()
}

fn content_length(response: &Response) -> Option<u64> {
    response
        .headers()
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}
