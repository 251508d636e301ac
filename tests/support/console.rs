//! A console in GitHub Actions mode whose output a test reads back.

use std::io::Write;
use std::sync::{Arc, Mutex};

use eb_deploy::gha::Console;

/// What the console wrote.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A console in GitHub Actions mode, and what it writes.
pub fn console() -> (Console, Captured) {
    let captured = Captured::default();
    (Console::with_writer(true, false, Box::new(captured.clone())), captured)
}
