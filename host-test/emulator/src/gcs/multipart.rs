//! `uploadType=multipart`: JSON metadata, then the media, in one `multipart/related` body, read
//! by a streaming reader: the metadata part is small and read whole; the media part streams to a
//! sink as the frames arrive, holding back only the few bytes that might begin the closing
//! delimiter.

use std::collections::HashMap;

use http::header::CONTENT_TYPE;
use http::request::Parts;
use memchr::memmem;

use super::Fail;
use super::body::{Body, Cut};
use super::errors::bad_request;
use super::object::UploadMetadata;
use super::params::header_str;
use super::upload::Single;
use crate::reply::Reply;
use crate::state::State;

/// `uploadType=multipart`: JSON metadata, then the media, in one `multipart/related` body.
pub(super) async fn upload(
    state: &State,
    parts: &Parts,
    query: &HashMap<String, String>,
    if_generation_match: Option<i64>,
    body: &mut Body,
) -> Result<Reply, Fail> {
    let boundary = header_str(&parts.headers, CONTENT_TYPE.as_str())
        .and_then(boundary)
        .ok_or_else(|| {
            bad_request(
                "invalid",
                "Invalid multipart request: the Content-Type must be multipart/related with a \
                 boundary.",
            )
        })?;
    let mut reader = Reader::new(body, &boundary);
    let (metadata, media) = reader.metadata().await?;
    let spec = UploadMetadata::parse(&metadata)?.spec(
        query.get("name").map(String::as_str),
        media.content_type.as_deref(),
    )?;
    let mut upload = Single::begin(state, spec, &parts.headers, if_generation_match)?;
    reader.media(|data| upload.staging.write(data)).await?;
    upload.finish(state)
}

/// The metadata part (and the preamble) may not exceed this.
const METADATA_LIMIT: usize = 1 << 20;

#[derive(Debug)]
pub(super) enum MultipartError {
    Cut(Cut),
    /// The body is not the multipart shape GCS accepts; the words say why.
    Invalid(String),
    /// The sink failed (e.g. the disk).
    Sink(std::io::Error),
}

impl From<Cut> for MultipartError {
    fn from(cut: Cut) -> Self {
        MultipartError::Cut(cut)
    }
}

fn invalid<T>(why: impl Into<String>) -> Result<T, MultipartError> {
    Err(MultipartError::Invalid(why.into()))
}

/// The boundary of `multipart/related; boundary=B` (quoted or not).
pub(super) fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let media_type = params.next()?.trim();
    if !media_type.eq_ignore_ascii_case("multipart/related") {
        return None;
    }
    params.find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        (!value.is_empty() && value.len() <= 70).then(|| value.to_owned())
    })
}

/// One part's headers: only the content type matters.
#[derive(Debug, Default)]
pub(super) struct PartHeaders {
    pub content_type: Option<String>,
}

fn parse_headers(block: &[u8]) -> Result<PartHeaders, MultipartError> {
    let Ok(text) = std::str::from_utf8(block) else {
        return invalid("Multipart part headers are not valid UTF-8.");
    };
    let mut headers = PartHeaders::default();
    for line in text.split("\r\n").filter(|line| !line.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return invalid(format!("Invalid multipart part header {line:?}."));
        };
        if name.trim().eq_ignore_ascii_case("content-type") {
            headers.content_type = Some(value.trim().to_owned());
        }
    }
    Ok(headers)
}

pub(super) struct Reader<'b> {
    body: &'b mut Body,
    /// Read but not yet consumed.
    buf: Vec<u8>,
    /// `--BOUNDARY`.
    dash_boundary: Vec<u8>,
    /// `\r\n--BOUNDARY`: what ends a part.
    delimiter: memmem::Finder<'static>,
}

impl<'b> Reader<'b> {
    pub(super) fn new(body: &'b mut Body, boundary: &str) -> Self {
        Reader {
            body,
            buf: Vec::new(),
            dash_boundary: format!("--{boundary}").into_bytes(),
            delimiter: memmem::Finder::new(format!("\r\n--{boundary}").as_bytes()).into_owned(),
        }
    }

    /// Reads one more frame into the buffer; `false` at the end of the body.
    async fn fill(&mut self) -> Result<bool, MultipartError> {
        match self.body.next().await? {
            Some(data) => {
                self.buf.extend_from_slice(&data);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn ensure(&mut self, n: usize) -> Result<(), MultipartError> {
        while self.buf.len() < n {
            if !self.fill().await? {
                return invalid("Multipart body ended before its closing delimiter.");
            }
        }
        Ok(())
    }

    /// Everything before `needle` (which is consumed too), at most `limit` bytes.
    async fn until(&mut self, needle: &[u8], limit: usize) -> Result<Vec<u8>, MultipartError> {
        let finder = memmem::Finder::new(needle);
        let mut searched = 0;
        loop {
            if let Some(at) = finder.find(&self.buf[searched..]) {
                let at = searched + at;
                let before = self.buf[..at].to_vec();
                self.buf.drain(..at + needle.len());
                return Ok(before);
            }
            searched = self.buf.len().saturating_sub(needle.len() - 1);
            if self.buf.len() > limit {
                return invalid("Multipart metadata is too large.");
            }
            if !self.fill().await? {
                return invalid("Multipart body ended before its closing delimiter.");
            }
        }
    }

    /// After a boundary: `true` if a part follows (`\r\n`), `false` if it was the last (`--`).
    async fn after_boundary(&mut self) -> Result<bool, MultipartError> {
        // Transport padding: spaces and tabs may follow a boundary.
        loop {
            self.ensure(1).await?;
            if self.buf[0] == b' ' || self.buf[0] == b'\t' {
                self.buf.remove(0);
            } else {
                break;
            }
        }
        self.ensure(2).await?;
        match &self.buf[..2] {
            b"\r\n" => {
                self.buf.drain(..2);
                Ok(true)
            }
            b"--" => {
                self.buf.drain(..2);
                Ok(false)
            }
            _ => invalid("Invalid multipart boundary line."),
        }
    }

    async fn part_headers(&mut self) -> Result<PartHeaders, MultipartError> {
        self.ensure(2).await?;
        if self.buf.starts_with(b"\r\n") {
            self.buf.drain(..2);
            return Ok(PartHeaders::default());
        }
        let block = self.until(b"\r\n\r\n", METADATA_LIMIT).await?;
        parse_headers(&block)
    }

    /// The preamble, the first part (the metadata) and the headers of the second (the media).
    pub(super) async fn metadata(&mut self) -> Result<(Vec<u8>, PartHeaders), MultipartError> {
        let dash_boundary = self.dash_boundary.clone();
        self.until(&dash_boundary, METADATA_LIMIT).await?;
        if !self.after_boundary().await? {
            return invalid("Invalid multipart request with 0 mime parts.");
        }
        let headers = self.part_headers().await?;
        if !headers
            .content_type
            .as_deref()
            .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/json"))
        {
            return invalid(
                "The first part of a multipart upload must be application/json metadata.",
            );
        }
        let delimiter = self.delimiter.needle().to_vec();
        let metadata = self.until(&delimiter, METADATA_LIMIT).await?;
        if !self.after_boundary().await? {
            return invalid("Invalid multipart request with 1 mime parts.");
        }
        let media = self.part_headers().await?;
        Ok((metadata, media))
    }

    /// Streams the media part into `sink`, then checks that it was the last part. Returns the
    /// media's length.
    pub(super) async fn media(
        &mut self,
        mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<u64, MultipartError> {
        let keep = self.delimiter.needle().len() - 1;
        let mut written = 0u64;
        loop {
            if let Some(at) = self.delimiter.find(&self.buf) {
                sink(&self.buf[..at]).map_err(MultipartError::Sink)?;
                written += at as u64;
                self.buf.drain(..at + self.delimiter.needle().len());
                break;
            }
            // All but the tail that might start the delimiter is media.
            let safe = self.buf.len().saturating_sub(keep);
            if safe > 0 {
                sink(&self.buf[..safe]).map_err(MultipartError::Sink)?;
                written += safe as u64;
                self.buf.drain(..safe);
            }
            if !self.fill().await? {
                return invalid("Multipart body ended before its closing delimiter.");
            }
        }
        if self.after_boundary().await? {
            return invalid("Invalid multipart request with more than 2 mime parts.");
        }
        // The epilogue is ignored, but read: an upload is only whole once its body has ended.
        self.body.drain().await?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        assert_eq!(
            boundary("multipart/related; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            boundary("Multipart/Related;charset=x; Boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(boundary("multipart/form-data; boundary=abc"), None);
        assert_eq!(boundary("multipart/related"), None);
        assert_eq!(boundary("multipart/related; boundary="), None);
    }

    #[test]
    fn part_headers() {
        let headers = parse_headers(b"Content-Type: text/plain\r\nX: y").unwrap();
        assert_eq!(headers.content_type.as_deref(), Some("text/plain"));
        assert!(parse_headers(b"nonsense").is_err());
    }
}
