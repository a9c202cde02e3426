//! The navigation bar every page shows.

use crate::auth::Session;

/// Navigation data every page template gets.
pub struct Nav {
    pub user: Option<String>,
    pub is_admin: bool,
    pub csrf: Option<String>,
    pub flash: Option<String>,
    /// The flash says something was refused (shown as a warning).
    pub flash_refused: bool,
}

/// Starts a stored flash message that reports a refusal: the flash is one
/// text column, and a control character cannot come from a form.
pub(super) const REFUSED_MARK: char = '\u{1}';

impl Nav {
    pub fn anonymous() -> Self {
        Nav {
            user: None,
            is_admin: false,
            csrf: None,
            flash: None,
            flash_refused: false,
        }
    }

    pub fn for_session(s: &Session) -> Self {
        Nav {
            user: s.user.as_ref().map(|u| u.username.clone()),
            is_admin: s.user.as_ref().is_some_and(|u| u.is_admin),
            csrf: Some(s.csrf_token.clone()),
            flash: s
                .flash
                .as_deref()
                .map(|f| f.trim_start_matches(REFUSED_MARK).to_string()),
            flash_refused: s
                .flash
                .as_deref()
                .is_some_and(|f| f.starts_with(REFUSED_MARK)),
        }
    }
}
