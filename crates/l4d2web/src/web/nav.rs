//! The navigation bar every page shows.

use crate::auth::Session;

/// Navigation data every page template gets.
pub struct Nav {
    pub user: Option<String>,
    pub is_admin: bool,
    pub csrf: Option<String>,
    pub flash: Option<String>,
}

impl Nav {
    pub fn anonymous() -> Self {
        Nav {
            user: None,
            is_admin: false,
            csrf: None,
            flash: None,
        }
    }

    pub fn for_session(s: &Session) -> Self {
        Nav {
            user: s.user.as_ref().map(|u| u.username.clone()),
            is_admin: s.user.as_ref().is_some_and(|u| u.is_admin),
            csrf: Some(s.csrf_token.clone()),
            flash: s.flash.clone(),
        }
    }
}
