//! Alert pages: the user's webhooks (list and add), one webhook (event
//! toggles, test, delete, delivery log).
//!
//! Access rule: webhooks are private to their owner; everyone else
//! (administrators included) gets 404.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::audit::Trail;
use super::error::AppError;
use super::extract::{Authed, Protected};
use super::page::{flash, nav, parse_id, render, Nav};
use super::routes::Routes;
use super::state::AppState;
use crate::alerts::{self, AlertError, Delivery, EventKind, EventSet, Webhook, WebhookInput};
use crate::audit::Kind;

pub fn routes() -> Routes {
    Routes::default()
        .get("/alerts", list)
        .post("/alerts", create)
        .get("/alerts/{id}", webhook_page)
        .post("/alerts/{id}/events", set_events)
        .post("/alerts/{id}/test", send_test)
        .post("/alerts/{id}/delete", delete)
}

/// A form as name/value pairs: the event checkboxes repeat one name.
type Fields = Vec<(String, String)>;

fn field<'a>(fields: &'a Fields, name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

fn checked_events(fields: &Fields) -> impl Iterator<Item = &str> {
    fields
        .iter()
        .filter(|(k, _)| k == "event")
        .map(|(_, v)| v.as_str())
}

/// One event checkbox.
struct Choice {
    key: &'static str,
    label: &'static str,
    checked: bool,
}

fn choices(checked: impl Fn(EventKind, &'static str) -> bool) -> Vec<Choice> {
    EventKind::toggleable()
        .map(|k| Choice {
            key: k.key,
            label: k.label,
            checked: checked(k.kind, k.key),
        })
        .collect()
}

/// What the add form shows.
struct NewForm {
    name: String,
    url: String,
    format: String,
    events: Vec<Choice>,
}

impl NewForm {
    fn blank() -> Self {
        NewForm {
            name: String::new(),
            url: String::new(),
            format: "discord".into(),
            events: choices(|_, _| true),
        }
    }

    fn from_fields(fields: &Fields) -> Self {
        let on: Vec<&str> = checked_events(fields).collect();
        NewForm {
            name: field(fields, "name").to_string(),
            url: field(fields, "url").to_string(),
            format: field(fields, "format").to_string(),
            events: choices(|_, key| on.contains(&key)),
        }
    }
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct ListPage {
    nav: Nav,
    csrf: String,
    webhooks: Vec<Webhook>,
    form: NewForm,
    error: Option<String>,
    allow_private: bool,
    max_webhooks: i64,
}

async fn list_with(
    state: &AppState,
    a: &Authed,
    form: NewForm,
    error: Option<String>,
) -> Result<Response, AppError> {
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = ListPage {
        nav: nav(state, &a.session).await?,
        csrf: a.session.csrf_token.clone(),
        webhooks: alerts::list(&state.pool, a.user.id).await?,
        form,
        error,
        allow_private: state.config.webhook_allow_private,
        max_webhooks: alerts::MAX_WEBHOOKS,
    };
    Ok((status, render(&page)?).into_response())
}

async fn list(State(state): State<AppState>, a: Authed) -> Result<Response, AppError> {
    list_with(&state, &a, NewForm::blank(), None).await
}

async fn create(
    State(state): State<AppState>,
    a: Authed,
    trail: Trail,
    Protected { form, .. }: Protected<Fields>,
) -> Result<Response, AppError> {
    let input = match WebhookInput::validate(
        field(&form, "name"),
        field(&form, "url"),
        field(&form, "format"),
        checked_events(&form),
    ) {
        Ok(i) => i,
        Err(e) => {
            return list_with(&state, &a, NewForm::from_fields(&form), Some(e.to_string())).await
        }
    };
    match alerts::create(
        &state.pool,
        a.user.id,
        &input,
        state.config.webhook_allow_private,
    )
    .await
    {
        Ok(w) => {
            let note = trail
                .note(Kind::WebhookAdded)
                .target("webhook", w.id, &w.name);
            let events = w.events.labels().join(", ");
            note.detail(format!("{}, events: {events}", w.format.as_str()))
                .save(&state)
                .await;
            flash(
                &state,
                &a.session,
                &format!("Webhook {} added. Send a test to check it.", w.name),
            )
            .await?;
            Ok(Redirect::to(&format!("/alerts/{}", w.id)).into_response())
        }
        Err(AlertError::Db(e)) => Err(e.into()),
        Err(e) => list_with(&state, &a, NewForm::from_fields(&form), Some(e.to_string())).await,
    }
}

#[derive(Template)]
#[template(path = "alert.html")]
struct WebhookPage {
    nav: Nav,
    csrf: String,
    webhook: Webhook,
    events: Vec<Choice>,
    deliveries: Vec<Delivery>,
    keep: i64,
}

async fn webhook_page(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let webhook = alerts::get(&state.pool, a.user.id, id).await?;
    let deliveries =
        alerts::deliveries(&state.pool, a.user.id, id, alerts::KEEP_DELIVERIES).await?;
    let events = choices(|kind, _| webhook.events.contains(kind));
    let page = WebhookPage {
        nav: nav(&state, &a.session).await?,
        csrf: a.session.csrf_token.clone(),
        webhook,
        events,
        deliveries,
        keep: alerts::KEEP_DELIVERIES,
    };
    Ok(render(&page)?.into_response())
}

async fn set_events(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    trail: Trail,
    Protected { form, .. }: Protected<Fields>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    // Others' webhooks are 404 before any validation message.
    let webhook = alerts::get(&state.pool, a.user.id, id).await?;
    let events = EventSet::from_keys(checked_events(&form))?;
    alerts::set_events(&state.pool, a.user.id, id, &events).await?;
    let what = if events.is_empty() {
        "no events (only tests)".to_string()
    } else {
        events.labels().join(", ")
    };
    let note = trail
        .note(Kind::WebhookChanged)
        .target("webhook", id, &webhook.name);
    note.detail(format!("events: {what}")).save(&state).await;
    flash(
        &state,
        &a.session,
        &format!("Webhook {} now gets: {what}.", webhook.name),
    )
    .await?;
    Ok(Redirect::to(&format!("/alerts/{id}")).into_response())
}

async fn send_test(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    trail: Trail,
    Protected { .. }: Protected<Fields>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let webhook = alerts::get(&state.pool, a.user.id, id).await?;
    alerts::send_test(&state.pool, a.user.id, id).await?;
    let note = trail
        .note(Kind::WebhookTested)
        .target("webhook", id, &webhook.name);
    note.detail("test alert queued").save(&state).await;
    flash(
        &state,
        &a.session,
        &format!(
            "Test alert queued for webhook {}; its result shows in the log below.",
            webhook.name
        ),
    )
    .await?;
    Ok(Redirect::to(&format!("/alerts/{id}#deliveries")).into_response())
}

async fn delete(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    trail: Trail,
    Protected { .. }: Protected<Fields>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let name = alerts::delete(&state.pool, a.user.id, id).await?;
    let note = trail
        .note(Kind::WebhookDeleted)
        .target("webhook", id, &name);
    note.save(&state).await;
    flash(
        &state,
        &a.session,
        &format!("Webhook {name} deleted with its delivery log."),
    )
    .await?;
    Ok(Redirect::to("/alerts").into_response())
}
