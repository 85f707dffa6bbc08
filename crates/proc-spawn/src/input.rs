//! `Input`: the bytes [`run`](crate::Command::run) writes to a child's stdin, held without a
//! copy.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// Bytes for a child's stdin, given to [`Command::input`](crate::Command::input) or
/// [`Pipeline::input`](crate::Pipeline::input). Made from owned or `'static` bytes **without
/// copying them**: a `Vec<u8>` or `String` is moved in, a literal is borrowed, an `Arc<[u8]>`
/// is shared. Cloning a `Command` shares its input.
///
/// Borrowed bytes that are not `'static` (`&buf[..]`, `&vec`) are not accepted, so that a
/// copy is never made behind your back (piping 1 GiB used to cost 3 GiB): pass
/// `buf.to_vec()` for a copy you can see, or move the `Vec` in, or share an `Arc<[u8]>`.
///
/// ```
/// use std::sync::Arc;
/// use proc_spawn::Command;
///
/// let data = vec![b'x'; 1 << 20];
/// let out = Command::new("wc").arg("-c").input(data).capture_output().run()?; // moved in
/// assert_eq!(out.stdout_text()?.trim(), "1048576");
/// Command::new("cat").input("literal text").capture_output().run()?;              // borrowed
/// let shared: Arc<[u8]> = Arc::from(&b"shared"[..]);
/// Command::new("cat").input(Arc::clone(&shared)).capture_output().run()?;        // shared
/// # Ok::<(), proc_spawn::Error>(())
/// ```
#[derive(Clone)]
pub struct Input(Bytes);

#[derive(Clone)]
enum Bytes {
    Static(&'static [u8]),
    Vec(Arc<Vec<u8>>),
    Shared(Arc<[u8]>),
}

impl Input {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Bytes::Static(bytes) => bytes,
            Bytes::Vec(bytes) => bytes,
            Bytes::Shared(bytes) => bytes,
        }
    }

    /// How many bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// True when there are no bytes (the child's stdin is still a pipe, closed at once).
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }
}

impl fmt::Debug for Input {
    /// The length only: a `Command` holding 1 GiB of input must not print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Input({} bytes)", self.len())
    }
}

impl From<Vec<u8>> for Input {
    fn from(bytes: Vec<u8>) -> Input {
        Input(Bytes::Vec(Arc::new(bytes)))
    }
}

impl From<String> for Input {
    fn from(text: String) -> Input {
        Input::from(text.into_bytes())
    }
}

impl From<Box<[u8]>> for Input {
    fn from(bytes: Box<[u8]>) -> Input {
        Input::from(bytes.into_vec())
    }
}

impl From<Arc<[u8]>> for Input {
    fn from(bytes: Arc<[u8]>) -> Input {
        Input(Bytes::Shared(bytes))
    }
}

impl From<Arc<Vec<u8>>> for Input {
    fn from(bytes: Arc<Vec<u8>>) -> Input {
        Input(Bytes::Vec(bytes))
    }
}

impl From<&'static [u8]> for Input {
    fn from(bytes: &'static [u8]) -> Input {
        Input(Bytes::Static(bytes))
    }
}

impl<const N: usize> From<&'static [u8; N]> for Input {
    fn from(bytes: &'static [u8; N]) -> Input {
        Input(Bytes::Static(bytes))
    }
}

impl From<&'static str> for Input {
    fn from(text: &'static str) -> Input {
        Input(Bytes::Static(text.as_bytes()))
    }
}

impl From<Cow<'static, [u8]>> for Input {
    fn from(bytes: Cow<'static, [u8]>) -> Input {
        match bytes {
            Cow::Borrowed(bytes) => Input::from(bytes),
            Cow::Owned(bytes) => Input::from(bytes),
        }
    }
}

impl From<Cow<'static, str>> for Input {
    fn from(text: Cow<'static, str>) -> Input {
        match text {
            Cow::Borrowed(text) => Input::from(text),
            Cow::Owned(text) => Input::from(text),
        }
    }
}
