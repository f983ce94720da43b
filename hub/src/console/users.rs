//! Console users: names, roles and argon2id password hashes.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::auth::Role;
use crate::store::Store;

/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 8;
/// The longest password accepted (hashing is costly; a megabyte of password is an attack).
pub const MAX_PASSWORD: usize = 1024;

/// Why a user could not be added.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    Invalid(String),
    #[error("a user named {0:?} exists already")]
    Exists(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Checks a login name: 1..=64 letters, digits or `_ . @ -`.
pub fn valid_name(name: &str) -> Result<(), UserError> {
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '@' | '-'));
    if ok { Ok(()) } else { Err(UserError::Invalid(format!("the name {name:?} is 1..=64 letters, digits or _ . @ -"))) }
}

/// Checks a new password's length.
pub fn valid_password(password: &str) -> Result<(), UserError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        return Err(UserError::Invalid(format!(
            "a password has at least {MIN_PASSWORD} characters (and at most {MAX_PASSWORD} bytes)"
        )));
    }
    Ok(())
}

/// The argon2id hash (PHC string, random salt) of a password. CPU-heavy: call it off the
/// async threads (`spawn_blocking`).
pub fn hash_password(password: &str) -> Result<String, UserError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| UserError::Invalid(format!("cannot hash the password: {e}")))
}

/// Whether `password` matches the PHC string `hash` (false for a malformed hash).
pub fn verify_password(password: &str, hash: &str) -> bool {
    password.len() <= MAX_PASSWORD && Argon2::default().verify_password(password.as_bytes(), hash).is_ok()
}

/// A hash that matches no password, verified when the user does not exist so that the answer
/// takes as long as for a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&crate::auth::new_token()).unwrap_or_default())
}

/// Creates a console user with `role` and `password` (argon2id). Fails if the name is taken or
/// the name or password is not acceptable. The simulator's demo calls this to make its login.
pub async fn add_user(store: &Store, name: &str, role: Role, password: &str) -> Result<(), UserError> {
    valid_name(name)?;
    valid_password(password)?;
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| UserError::Invalid(format!("hashing failed: {e}")))??;
    if store.add_user(name, role.as_str(), &hash, chrono::Utc::now().timestamp_millis()).await? {
        Ok(())
    } else {
        Err(UserError::Exists(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hashed_with_argon2id_and_verified() {
        let h = hash_password("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert_ne!(h, hash_password("correct horse").expect("hash"), "a random salt each time");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsE", &h));
        assert!(!verify_password("correct horse", "not a hash"));
        assert!(!verify_password("x", dummy_hash()));
    }

    #[test]
    fn names_and_passwords_are_checked() {
        for ok in ["duty", "li.wei@zj", "值班员", "a-b_c"] {
            assert!(valid_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "<script>", "x/y", &"a".repeat(65)] {
            assert!(valid_name(bad).is_err(), "{bad}");
        }
        assert!(valid_password("1234567").is_err());
        assert!(valid_password("12345678").is_ok());
        assert!(valid_password(&"x".repeat(2000)).is_err());
    }
}
