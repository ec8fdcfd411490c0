//! Any bytes as a plain manifest: the loader must return diagnostics, never
//! panic, never hang, and never print a credential it was given.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

mod password;

fuzz_target!(|data: &[u8]| {
    // Invalid UTF-8 is refused before parsing (tested elsewhere); fuzz what
    // reaches the YAML layer.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let loaded = promoter::manifest::load_plain_text(Path::new("fuzz.yaml"), text);
    for diagnostic in &loaded.diagnostics {
        let shown = diagnostic.to_string();
        assert!(
            !shown.contains("YAML parser failed"),
            "the parser panicked (caught): {shown}"
        );
        // Not `!shown.contains("hunter2")`: `registries: hunter2` is no
        // credential, and its diagnostic rightly quotes it.
        assert!(
            !password::leaked(text, &shown),
            "a credential leaked: {shown}"
        );
    }
});
