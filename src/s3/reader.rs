//! An S3 object as a [`ByteSource`]: one GetObject streamed piece by piece; a read that breaks
//! is resumed where it stopped with a Range GET pinned to the same version (`If-Match` the
//! ETag, and the version id when the bucket keeps versions), so one delivery never mixes two
//! versions of an object. Listing a prefix reads every page.

use std::time::Duration;

use super::answer::{self, Call, ObjectInfo, Refusal};
use super::request::{self, Pin, S3Endpoint};
use super::uri::S3Uri;
use crate::delivery::ByteSource;
use crate::error::{Error, Step};
use crate::io::{BodyReader, Io, Opened, TransportError, TransportErrorKind};
use crate::retry::{Backoff, retry};
use crate::sigv4::Credentials;

const S3_TIMEOUT: Duration = Duration::from_secs(60);
/// How many times in a row a broken read is resumed without a byte arriving in between
/// before the delivery gives up (progress starts the count again).
const MAX_RESUMES: u32 = 5;
/// The most objects one prefix may hold: a listing is kept whole in the instance.
pub const MAX_LISTED: usize = 100_000;
/// The most of an error answer's body that is read.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// The most a listing page may hold (500 keys take far less).
const MAX_PAGE: usize = 1 << 20;

/// Who reads, where: the pipeline's credentials and the region to start from.
#[derive(Clone, Debug)]
pub struct Access {
    pub endpoint: S3Endpoint,
    pub region: String,
    pub credentials: Credentials,
    pub backoff: Backoff,
}

pub struct S3Reader {
    /// The reader's own handle on the host: it reads while uploads go out through another.
    io: Box<dyn Io>,
    access: Access,
    uri: S3Uri,
    info: ObjectInfo,
    body: Option<Box<dyn BodyReader>>,
    offset: u64,
    resumes: u32,
    /// Resumes since the last byte arrived.
    stalls: u32,
}

impl S3Reader {
    /// Starts reading the object `uri` (a GetObject whose answer's body is not yet read).
    pub fn open(io: &mut dyn Io, access: &Access, uri: &S3Uri) -> Result<S3Reader, Error> {
        let Some(own) = io.fork() else {
            return Err(Error::new(
                Step::Read,
                format!("{uri}: this host cannot read S3 while it uploads (no second handle)"),
            ));
        };
        let mut access = access.clone();
        let (head, body) = get(io, &mut access, uri, 0, &Pin::default())?;
        let info = answer::object_info(&head, &uri.to_string())?;
        Ok(S3Reader {
            io: own,
            access,
            uri: uri.clone(),
            info,
            body: Some(body),
            offset: 0,
            resumes: 0,
            stalls: 0,
        })
    }

    pub fn info(&self) -> &ObjectInfo {
        &self.info
    }

    /// The region the bucket answered from.
    pub fn region(&self) -> &str {
        &self.access.region
    }

    /// How many broken reads were resumed.
    pub fn resumes(&self) -> u32 {
        self.resumes
    }

    fn resume(&mut self, why: String) -> Result<(), String> {
        self.body = None;
        if self.stalls >= MAX_RESUMES {
            return Err(format!(
                "the read broke at byte {} ({why}) and got no further in {MAX_RESUMES} tries; \
                 nothing was created. Fix: deliver it again when S3 can be reached",
                self.offset
            ));
        }
        self.resumes += 1;
        self.stalls += 1;
        self.io.log(&format!(
            "{}: the read broke at byte {} ({why}); resuming there",
            self.uri, self.offset
        ));
        self.io
            .sleep(Duration::from_millis(200 * u64::from(self.resumes)));
        let pin = Pin {
            etag: self.info.etag.clone(),
        };
        let (head, body) = get(
            &mut *self.io,
            &mut self.access,
            &self.uri,
            self.offset,
            &pin,
        )
        .map_err(|e| e.to_string())?;
        let starts_here = head
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("bytes "))
            .and_then(|v| v.split('-').next())
            .and_then(|v| v.parse::<u64>().ok())
            == Some(self.offset);
        if head.status() != 206 || !starts_here {
            return Err(format!(
                "S3 answered a read from byte {} with {} and not that range; nothing was \
                 created. Fix: deliver it again",
                self.offset,
                head.status()
            ));
        }
        self.body = Some(body);
        Ok(())
    }
}

impl ByteSource for S3Reader {
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        let mut filled = 0;
        while filled < buf.len() {
            let Some(body) = &mut self.body else {
                if self.offset >= self.info.size {
                    break;
                }
                self.resume("the connection was closed".into())?;
                continue;
            };
            match body.read(&mut buf[filled..]) {
                Ok(0) if self.offset < self.info.size => {
                    self.resume("it ended early".into())?;
                }
                Ok(0) => {
                    self.body = None;
                    break;
                }
                Ok(n) => {
                    self.stalls = 0;
                    // More than the object's size would be another object's bytes.
                    if self.offset + n as u64 > self.info.size {
                        return Err(format!(
                            "S3 sent more than the {} bytes the object has",
                            self.info.size
                        ));
                    }
                    filled += n;
                    self.offset += n as u64;
                }
                Err(e) => self.resume(e.message)?,
            }
        }
        Ok(filled)
    }
}

/// GetObject from `from` on, retried when S3 or the connection fails for a while, following
/// the bucket to its region once.
fn get(
    io: &mut dyn Io,
    access: &mut Access,
    uri: &S3Uri,
    from: u64,
    pin: &Pin,
) -> Result<Opened, Error> {
    let build = |access: &Access, region: &str, now| {
        request::get_object(
            &access.endpoint,
            region,
            uri,
            &access.credentials,
            now,
            from,
            pin,
        )
    };
    let accept = |head, body| Ok((head, body));
    ask(io, access, uri, Call::GetObject, &mut 1, build, accept)
}

/// Sends the request `build` makes for the bucket's region, retrying what is worth another
/// attempt; a bucket in another region is followed there while `redirects` allow. A success
/// is read by `accept`, a refusal diagnosed.
fn ask<T>(
    io: &mut dyn Io,
    access: &mut Access,
    uri: &S3Uri,
    call: Call,
    redirects: &mut u32,
    build: impl Fn(&Access, &str, time::OffsetDateTime) -> Result<http::Request<()>, Error>,
    accept: impl Fn(http::Response<()>, Box<dyn BodyReader>) -> Result<T, Error>,
) -> Result<T, Error> {
    let shown = uri.to_string();
    loop {
        let region = access.region.clone();
        let (result, _) = retry(io, &access.backoff.clone(), |io| {
            let request = build(access, &region, io.now())?;
            let (head, mut body) = io.open(&request, S3_TIMEOUT).map_err(|e| {
                Error::no_answer(
                    Step::Read,
                    format!("S3 ({shown}) could not be reached: {e}"),
                    &e,
                )
            })?;
            if head.status().is_success() {
                return accept(head, body).map(Ok);
            }
            let text = read_small(&mut *body);
            match answer::refusal(
                head.status().as_u16(),
                head.headers(),
                &text,
                call,
                &shown,
                &region,
            ) {
                Refusal::WrongRegion(other) => Ok(Err(other)),
                Refusal::Error(e) => Err(e),
            }
        });
        match result? {
            Ok(value) => return Ok(value),
            Err(other) if *redirects > 0 => {
                *redirects -= 1;
                access.region = other;
            }
            Err(_) => return Err(redirected(&shown)),
        }
    }
}

fn redirected(shown: &str) -> Error {
    Error::new(
        Step::Read,
        format!("S3 kept sending {shown} to other regions"),
    )
    .with_fix("set aws_region (or AWS_REGION) to the bucket's region")
}

fn read_small(body: &mut dyn BodyReader) -> Vec<u8> {
    let mut text = vec![0u8; MAX_ERROR_BODY];
    let mut n = 0;
    while n < text.len() {
        match body.read(&mut text[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    text.truncate(n);
    text
}

/// Every object under the prefix `uri`, with its size, in S3's (key) order; zero-byte keys
/// ending in `/` (the console's folder markers) are left out.
pub fn list(
    io: &mut dyn Io,
    access: &mut Access,
    uri: &S3Uri,
) -> Result<Vec<(String, u64)>, Error> {
    let shown = uri.to_string();
    let mut objects = Vec::new();
    let mut next: Option<String> = None;
    // One redirect for the whole listing: after it, every page asks the bucket's region.
    let mut redirects = 1;
    loop {
        let build = |access: &Access, region: &str, now| {
            request::list_objects(
                &access.endpoint,
                region,
                &uri.bucket,
                &uri.key,
                next.as_deref(),
                &access.credentials,
                now,
            )
        };
        let accept = |_, mut body: Box<dyn BodyReader>| {
            let page = read_page(&mut *body).map_err(|e| {
                Error::no_answer(
                    Step::Read,
                    format!("S3's listing of {shown} broke off: {e}"),
                    &e,
                )
            })?;
            answer::list_page(&page, &shown)
        };
        let page = ask(
            io,
            access,
            uri,
            Call::ListObjectsV2,
            &mut redirects,
            build,
            accept,
        )?;
        if page.next.is_some() && page.next == next {
            return Err(Error::new(
                Step::Read,
                format!("S3 answered the same listing page of {shown} twice"),
            )
            .with_fix("deliver the objects one by one, or ask again later"));
        }
        objects.extend(
            page.objects
                .into_iter()
                .filter(|(key, size)| !(key.ends_with('/') && *size == 0)),
        );
        if objects.len() > MAX_LISTED {
            return Err(Error::new(
                Step::Read,
                format!("{shown} holds more than {MAX_LISTED} objects"),
            )
            .with_fix("deliver narrower prefixes, one command each"));
        }
        match page.next {
            Some(token) => next = Some(token),
            None => return Ok(objects),
        }
    }
}

/// A listing page, whole: at most [`MAX_PAGE`] bytes, as any answer held in memory.
fn read_page(body: &mut dyn BodyReader) -> Result<Vec<u8>, TransportError> {
    let mut page = Vec::new();
    let mut piece = vec![0u8; 64 * 1024];
    loop {
        match body.read(&mut piece)? {
            0 => return Ok(page),
            n => page.extend_from_slice(&piece[..n]),
        }
        if page.len() > MAX_PAGE {
            return Err(TransportError::new(
                TransportErrorKind::TooLarge,
                "the listing page is larger than 1 MiB",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;
    use crate::secret::Secret;
    use crate::testing::{FakeIo, SharedIo};

    const DATA: &[u8] = b"0123456789";

    fn access() -> Access {
        Access {
            endpoint: S3Endpoint { base: None },
            region: "eu-west-1".into(),
            credentials: Credentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: Secret::new("canary-secret"),
                session_token: None,
            },
            backoff: Backoff::default(),
        }
    }

    /// S3 answering the first GET with a body that breaks after 4 bytes, and a ranged GET as
    /// `ranged` says.
    fn s3(ranged: impl Fn(&crate::io::Request) -> crate::io::Response + 'static) -> SharedIo {
        let mut fake = FakeIo::new();
        fake.on(
            "GET https://exports.s3.eu-west-1.amazonaws.com/k",
            move |request| {
                if request.headers().contains_key("range") {
                    return Ok(ranged(request));
                }
                Ok(http::Response::builder()
                    .header("content-length", "10")
                    .header("etag", "\"v1\"")
                    .header("x-fake-break-after", "4")
                    .body(DATA.to_vec())
                    .unwrap())
            },
        );
        SharedIo(Rc::new(RefCell::new(fake)))
    }

    #[test]
    fn a_broken_read_resumes_where_it_stopped_on_the_same_version() {
        let mut io = s3(|request| {
            assert_eq!(request.headers()["range"], "bytes=4-");
            assert_eq!(request.headers()["if-match"], "\"v1\"");
            http::Response::builder()
                .status(206)
                .header("content-length", "6")
                .header("content-range", "bytes 4-9/10")
                .body(DATA[4..].to_vec())
                .unwrap()
        });
        let uri = S3Uri::parse("s3://exports/k").unwrap();
        let mut reader = S3Reader::open(&mut io, &access(), &uri).unwrap();
        let mut buf = [0u8; 16];
        let n = reader.fill(&mut buf).unwrap();
        assert_eq!(&buf[..n], DATA);
        assert_eq!(reader.resumes(), 1);
        assert_eq!(reader.fill(&mut buf).unwrap(), 0);
        assert!(io.0.borrow().logged[0].contains("resuming there"));
    }

    #[test]
    fn an_object_replaced_mid_read_fails_instead_of_mixing_versions() {
        let mut io = s3(|_| {
            http::Response::builder()
                .status(412)
                .body(b"<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>".to_vec())
                .unwrap()
        });
        let uri = S3Uri::parse("s3://exports/k").unwrap();
        let mut reader = S3Reader::open(&mut io, &access(), &uri).unwrap();
        let mut buf = [0u8; 16];
        let e = reader.fill(&mut buf).unwrap_err();
        assert!(e.contains("PreconditionFailed"), "{e}");
        assert!(e.contains("replaced while it was read"), "{e}");
    }

    #[test]
    fn a_listing_reads_every_page() {
        let mut fake = FakeIo::new();
        fake.on(
            "GET https://exports.s3.eu-west-1.amazonaws.com/?",
            |request| {
                let query = request.uri().query().unwrap_or_default().to_owned();
                let body = if query.contains("continuation-token=next") {
                    "<ListBucketResult><Contents><Key>p/b</Key><Size>2</Size></Contents>\
                 <IsTruncated>false</IsTruncated></ListBucketResult>"
                } else {
                    "<ListBucketResult><Contents><Key>p/a</Key><Size>1</Size></Contents>\
                 <Contents><Key>p/dir/</Key><Size>0</Size></Contents>\
                 <IsTruncated>true</IsTruncated><NextContinuationToken>next</NextContinuationToken>\
                 </ListBucketResult>"
                };
                Ok(http::Response::new(body.as_bytes().to_vec()))
            },
        );
        let uri = S3Uri::parse("s3://exports/p/").unwrap();
        let listed = list(&mut fake, &mut access(), &uri).unwrap();
        assert_eq!(listed, vec![("p/a".into(), 1), ("p/b".into(), 2)]);
    }
}
