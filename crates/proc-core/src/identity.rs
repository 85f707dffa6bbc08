//! The identity of an executable: what a child started by `exec` sends in its hello, so the
//! parent can refuse one that is not running the same code (function offsets would name other
//! code there).
//!
//! The identity is the GNU build id of an ELF executable (a hash of its code and data that
//! the linker writes into a note; Debian's and Ubuntu's toolchains, and so rustc's default
//! link on them, always emit one), read from the file's program headers: three small reads.
//! On macOS it is the Mach-O `LC_UUID`, the same thing by another name. Where there is
//! neither (another linker, a universal binary), it is a hash of the whole file with its
//! length, computed once per process.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The path of the executable this process runs, for reading and for `exec`: on Linux the
/// kernel's own link (`/proc/self/exe`), which names the file that is running even after it
/// was replaced on disk (a rebuild while the program runs); elsewhere `current_exe`.
pub(crate) fn running_executable() -> io::Result<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        Ok(PathBuf::from("/proc/self/exe"))
    }
    #[cfg(not(target_os = "linux"))]
    {
        std::env::current_exe()
    }
}

/// This process's own identity, read once.
pub(crate) fn current() -> Result<&'static str, String> {
    static IDENTITY: OnceLock<Result<String, String>> = OnceLock::new();
    IDENTITY
        .get_or_init(|| {
            let path = running_executable().map_err(|err| err.to_string())?;
            of_file(&path).map_err(|err| format!("reading {}: {err}", path.display()))
        })
        .as_deref()
        .map_err(Clone::clone)
}

/// The identity of the executable at `path`: `build-id:<hex>` or `file:<len>:<hash>`.
pub(crate) fn of_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    if let Some(id) = elf_build_id(&mut file)? {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        return Ok(format!("build-id:{hex}"));
    }
    file.seek(SeekFrom::Start(0))?;
    if let Some(uuid) = mach_o_uuid(&mut file)? {
        let hex: String = uuid.iter().map(|b| format!("{b:02x}")).collect();
        return Ok(format!("uuid:{hex}"));
    }
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = std::hash::DefaultHasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        len += n as u64;
        std::hash::Hasher::write(&mut hasher, &buf[..n]);
    }
    Ok(format!(
        "file:{len}:{:016x}",
        std::hash::Hasher::finish(&hasher)
    ))
}

const PT_NOTE: u32 = 4;
const NT_GNU_BUILD_ID: u32 = 3;

/// The `NT_GNU_BUILD_ID` note of a 64-bit little-endian ELF file; `None` for anything else.
fn elf_build_id(file: &mut File) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; 64];
    if file.read_exact(&mut header).is_err() {
        return Ok(None);
    }
    // "\x7fELF", 64-bit, little endian.
    if header[..4] != *b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return Ok(None);
    }
    let u16_at = |b: &[u8], at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let u64_at = |b: &[u8], at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(word)
    };
    let phoff = u64_at(&header, 32);
    let phentsize = usize::from(u16_at(&header, 54));
    let phnum = usize::from(u16_at(&header, 56));
    if phentsize < 56 || phnum == 0 || phnum > 512 {
        return Ok(None);
    }
    let mut table = vec![0u8; phentsize * phnum];
    file.seek(SeekFrom::Start(phoff))?;
    if file.read_exact(&mut table).is_err() {
        return Ok(None);
    }
    for entry in table.chunks_exact(phentsize) {
        if u32_at(entry, 0) != PT_NOTE {
            continue;
        }
        let (offset, size) = (u64_at(entry, 8), u64_at(entry, 32));
        if size == 0 || size > 1 << 16 {
            continue;
        }
        let mut notes = vec![0u8; size as usize];
        file.seek(SeekFrom::Start(offset))?;
        if file.read_exact(&mut notes).is_err() {
            continue;
        }
        if let Some(id) = find_build_id(&notes) {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

const MH_MAGIC_64: u32 = 0xfeed_facf;
const LC_UUID: u32 = 0x1b;

/// The `LC_UUID` of a 64-bit little-endian Mach-O file (what the linker writes on macOS, the
/// equivalent of a build id); `None` for anything else (a universal binary included).
fn mach_o_uuid(file: &mut File) -> io::Result<Option<[u8; 16]>> {
    let mut header = [0u8; 32];
    if file.read_exact(&mut header).is_err() {
        return Ok(None);
    }
    let word = |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    if word(&header, 0) != MH_MAGIC_64 {
        return Ok(None);
    }
    let commands = word(&header, 20) as usize;
    if commands > 1 << 20 {
        return Ok(None);
    }
    let mut table = vec![0u8; commands];
    if file.read_exact(&mut table).is_err() {
        return Ok(None);
    }
    let mut at = 0;
    while at + 8 <= table.len() {
        let (cmd, size) = (word(&table, at), word(&table, at + 4) as usize);
        if size < 8 {
            return Ok(None);
        }
        if cmd == LC_UUID && at + 24 <= table.len() {
            let mut uuid = [0u8; 16];
            uuid.copy_from_slice(&table[at + 8..at + 24]);
            return Ok(Some(uuid));
        }
        at += size;
    }
    Ok(None)
}

/// Walks a PT_NOTE segment: `namesz`, `descsz`, `type`, the name and the descriptor, each
/// padded to 4 bytes.
fn find_build_id(mut notes: &[u8]) -> Option<Vec<u8>> {
    let pad = |n: usize| n.checked_add(3).map(|n| n & !3);
    while notes.len() >= 12 {
        let word = |at: usize| {
            u32::from_le_bytes([notes[at], notes[at + 1], notes[at + 2], notes[at + 3]])
        };
        let (namesz, descsz, kind) = (word(0) as usize, word(4) as usize, word(8));
        let name_end = 12usize.checked_add(pad(namesz)?)?;
        let desc_end = name_end.checked_add(pad(descsz)?)?;
        if desc_end > notes.len() {
            return None;
        }
        if kind == NT_GNU_BUILD_ID && notes[12..12 + namesz] == *b"GNU\0" {
            return Some(notes[name_end..name_end + descsz].to_vec());
        }
        notes = &notes[desc_end..];
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_running_test_binary_has_an_identity_that_is_stable() {
        let first = super::current().expect("identity");
        let again = super::of_file(&super::running_executable().expect("path")).expect("read");
        assert_eq!(first, again);
        #[cfg(target_os = "linux")]
        assert!(first.starts_with("build-id:"), "{first}");
    }

    #[test]
    fn another_file_has_another_identity() {
        let ours = super::current().expect("identity");
        let sh = super::of_file(std::path::Path::new("/bin/sh")).expect("read /bin/sh");
        assert_ne!(ours, sh);
    }
}
