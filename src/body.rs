//! Reading an HTTP body whole within a size limit: the client's request, and an upstream's answer.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Body;

/// Why a body was not read whole.
#[derive(Debug)]
pub enum ReadError<E> {
    TooLarge,
    Body(E),
}

/// All of `body`, refused beyond `limit` bytes. The usual small body arrives as one data frame and is kept
/// as it came, without a copy; several are joined. (`http_body_util`'s `Limited` and `collect` do the
/// same through a queue of frames, several times the work for the one frame.)
pub async fn read_whole<B>(mut body: B, limit: usize) -> Result<Bytes, ReadError<B::Error>>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut first: Option<Bytes> = None;
    let mut joined = Vec::new();
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        // Trailers carry no data.
        let Ok(data) = frame.map_err(ReadError::Body)?.into_data() else {
            continue;
        };
        len += data.len();
        if len > limit {
            return Err(ReadError::TooLarge);
        }
        match first.take() {
            None if joined.is_empty() => first = Some(data),
            None => joined.extend_from_slice(&data),
            Some(before) => {
                joined.reserve(len);
                joined.extend_from_slice(&before);
                joined.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| joined.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    fn frames(pieces: &[&'static str]) -> impl Body<Data = Bytes, Error = std::convert::Infallible> + Unpin {
        let frames = pieces
            .iter()
            .map(|piece| Ok(hyper::body::Frame::data(Bytes::from_static(piece.as_bytes()))));
        StreamBody::new(futures_util::stream::iter(frames.collect::<Vec<_>>()))
    }

    #[tokio::test]
    async fn one_frame_is_kept_and_several_are_joined() {
        let body = Bytes::from_static(b"{\"a\":1}");
        let read = read_whole(Full::new(body.clone()), 64).await.unwrap();
        assert_eq!(read.as_ptr(), body.as_ptr(), "one frame is not copied");
        assert_eq!(read_whole(frames(&["ab", "", "cd", "e"]), 5).await.unwrap(), "abcde");
        assert_eq!(read_whole(frames(&[]), 5).await.unwrap(), "");
    }

    #[tokio::test]
    async fn more_than_the_limit_is_refused() {
        assert!(matches!(
            read_whole(frames(&["abc", "def"]), 5).await,
            Err(ReadError::TooLarge)
        ));
        assert!(matches!(
            read_whole(Full::new(Bytes::from_static(b"abcdef")), 5).await,
            Err(ReadError::TooLarge)
        ));
    }
}
