//! The credential oracle of the manifest targets. `hunter2` is the password
//! of the seeds' `https://user:hunter2@host` registry names. Diagnostics
//! quote what the user wrote, so `registries: hunter2` may well show the
//! word; but when every `hunter2` of the input is a password (`:hunter2@`,
//! in any case) no diagnostic may show it, in any case either.

/// Whether `shown` leaks the password that `input` held only as a password.
pub fn leaked(input: &str, shown: &str) -> bool {
    let input = input.to_ascii_lowercase();
    let words = input.matches("hunter2").count();
    words > 0
        && words == input.matches(":hunter2@").count()
        && shown.to_ascii_lowercase().contains("hunter2")
}
