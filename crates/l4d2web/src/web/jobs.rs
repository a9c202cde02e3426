//! The job pages: lists, one job with its log, the log's live stream, and
//! the administrators' game install.

use askama::Template;
use axum::extract::{Path, State};
use std::time::Instant;

use axum::http::HeaderMap;
use axum::response::sse::Event;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::error::AppError;
use super::extract::{Admin, Authed, Protected};
use super::page::{flash, nav, parse_id, render, Nav};
use super::routes::Routes;
use super::sparkline::bytes;
use super::sse::{self, Feed};
use super::state::AppState;
use l4d2_contract::install::{self as steamcmd, InstallProgress, RateMeter};

use crate::accounts::User;
use crate::fanout::Subscription;
use crate::game::{self, SteamLogin};
use crate::jobs::{Job, JobEvent, JobLine, JobLog, JobState};
use crate::servers::{self, access};
use crate::tasks::{self, Task};

pub fn routes() -> Routes {
    Routes::default()
        .get("/jobs", list)
        .get("/jobs/{id}", detail)
        .get("/jobs/{id}/stream", stream)
        .post("/admin/install", install)
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    nav: Nav,
    jobs: Vec<Job>,
    /// How the last install's Steam login went (administrators only).
    steam_login: Option<SteamLogin>,
    /// The installed game builds and the update check (administrators only).
    game: Option<super::game::BuildsSection>,
}

async fn list(State(state): State<AppState>, a: Authed) -> Result<Html<String>, AppError> {
    let scope = (!a.user.is_admin).then_some(a.user.id);
    let jobs = state.jobs.list(scope, 200).await?;
    let steam_login = match a.user.is_admin {
        true => Some(game::steam_login(&state.pool).await?),
        false => None,
    };
    let game = match a.user.is_admin {
        true => Some(super::game::BuildsSection::load(&state).await?),
        false => None,
    };
    render(&JobsPage {
        nav: nav(&state, &a.session).await?,
        jobs,
        steam_login,
        game,
    })
}

/// A job the user may see: their own, one on a server they may view
/// (shared servers included), or any for admins. Others are 404.
pub(super) async fn visible_job(state: &AppState, user: &User, id: &str) -> Result<Job, AppError> {
    let Some(job) = state.jobs.get(parse_id(id)?).await? else {
        return Err(AppError::NotFound);
    };
    if user.is_admin || job.user_id == Some(user.id) {
        return Ok(job);
    }
    if let Some(server) = job.subject.as_deref().and_then(servers::subject_server) {
        if access::access(&state.pool, user, server).await?.is_some() {
            return Ok(job);
        }
    }
    Err(AppError::NotFound)
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    nav: Nav,
    job: Job,
    lines: Vec<JobLine>,
}

async fn detail(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
) -> Result<Html<String>, AppError> {
    let job = visible_job(&state, &a.user, &id).await?;
    // A running job's log arrives over SSE (whole log, then the tail).
    let lines = if job.is_finished() {
        state.jobs.log().lines_after(job.id, 0, 100_000).await?
    } else {
        Vec::new()
    };
    render(&JobPage {
        nav: nav(&state, &a.session).await?,
        job,
        lines,
    })
}

#[derive(Template)]
#[template(
    source = "<div class=\"l s-{{ line.stream }}\">{{ line.line }}</div>",
    ext = "html"
)]
struct LineHtml<'a> {
    line: &'a JobLine,
}

#[derive(Template)]
#[template(
    source = "<span id=\"job-state\" class=\"badge state-{{ state }}\">{{ state }}</span>",
    ext = "html"
)]
struct StateHtml {
    state: JobState,
}

/// An install's progress bar (steamcmd's latest progress line).
#[derive(Template)]
#[template(
    source = "<progress max=\"100\" value=\"{{ percent }}\"></progress> \
<span class=\"meta\">{{ stage }} {{ percent }} % · {{ done }} of {{ total }}\
{% if let Some(r) = rate %} · {{ r }}/s{% endif %}</span>",
    ext = "html"
)]
struct ProgressHtml {
    stage: String,
    percent: String,
    done: String,
    total: String,
    rate: Option<String>,
}

impl ProgressHtml {
    fn new(progress: &InstallProgress, rate: Option<u64>) -> Self {
        Self {
            stage: progress.stage.clone(),
            percent: format!("{:.1}", progress.percent()),
            done: bytes(progress.done as f64),
            total: bytes(progress.total as f64),
            rate: rate.map(|r| bytes(r as f64)),
        }
    }
}

/// Lines read from the database per catch-up step.
const CATCH_UP_PAGE: i64 = 2000;

/// One viewer of a job's log: the log so far from the database, then new
/// lines as they are published; an `end` event when the job ends. A
/// viewer that fell behind (or missed a line) reads the database again.
struct JobFeed {
    log: JobLog,
    job_id: i64,
    /// The last line sent.
    last: i64,
    sub: Subscription<i64, JobEvent>,
    /// The stored lines were read up to the end once.
    caught_up: bool,
    /// Events as JSON (the API) instead of HTML fragments (the page).
    json: bool,
    /// None: still running when the feed started.
    finished: Option<JobState>,
    done: bool,
    /// Measures an install's download rate from the lines seen live.
    meter: RateMeter,
}

impl JobFeed {
    fn line(&mut self, l: &JobLine) -> Event {
        self.last = l.seq;
        let data = if self.json {
            serde_json::json!({"seq": l.seq, "stream": l.stream.as_str(), "line": l.line})
                .to_string()
        } else {
            LineHtml { line: l }.render().unwrap_or_default()
        };
        Event::default()
            .event("line")
            .id(l.seq.to_string())
            .data(data)
    }

    /// The lines' events, then, if one of them is a steamcmd progress
    /// report, one progress event for the latest. Only lines that arrive
    /// as they are written tell the rate; lines read back from the log
    /// came all at once.
    fn lines(&mut self, lines: &[JobLine], live: bool) -> Vec<Event> {
        let mut events: Vec<Event> = lines.iter().map(|l| self.line(l)).collect();
        let Some(progress) = lines.iter().rev().find_map(|l| steamcmd::parse(&l.line)) else {
            return events;
        };
        let rate = if live {
            self.meter.observe(&progress, Instant::now())
        } else {
            self.meter = RateMeter::new();
            None
        };
        let rate = rate.map(|r| r as u64);
        events.push(if self.json {
            let data = serde_json::json!({
                "stage": progress.stage,
                "percent": progress.percent(),
                "done": progress.done,
                "total": progress.total,
                "bytes_per_sec": rate,
            });
            Event::default().event("progress").data(data.to_string())
        } else {
            sse::html("progress", &ProgressHtml::new(&progress, rate))
        });
        events
    }

    async fn catch_up(&mut self) -> Vec<Event> {
        match self
            .log
            .lines_after(self.job_id, self.last, CATCH_UP_PAGE)
            .await
        {
            Ok(batch) => {
                if (batch.len() as i64) < CATCH_UP_PAGE {
                    self.caught_up = true;
                }
                self.lines(&batch, false)
            }
            Err(e) => {
                tracing::error!(job = self.job_id, error = %e, "job log read failed");
                self.caught_up = true;
                Vec::new()
            }
        }
    }

    fn end(&mut self, state: JobState) -> Vec<Event> {
        self.done = true;
        if self.json {
            let data = serde_json::json!({"state": state.as_str()}).to_string();
            return vec![Event::default().event("end").data(data)];
        }
        vec![sse::html("end", &StateHtml { state })]
    }
}

impl Feed for JobFeed {
    async fn next(&mut self) -> Option<Vec<Event>> {
        if self.done {
            return None;
        }
        if !self.caught_up {
            let events = self.catch_up().await;
            if !events.is_empty() {
                return Some(events);
            }
        }
        if let Some(state) = self.finished {
            return Some(self.end(state));
        }
        loop {
            use tokio::sync::broadcast::error::RecvError;
            match self.sub.rx.recv().await {
                Ok(JobEvent::Line(l)) if l.seq <= self.last => {}
                Ok(JobEvent::Line(l)) if l.seq == self.last + 1 => {
                    return Some(self.lines(std::slice::from_ref(&l), true))
                }
                Ok(JobEvent::Line(_)) | Err(RecvError::Lagged(_)) => {
                    self.caught_up = false;
                    return Some(self.catch_up().await);
                }
                Ok(JobEvent::End { state }) => {
                    self.caught_up = false;
                    self.finished = Some(state);
                    return Some(self.catch_up().await);
                }
                Err(RecvError::Closed) => {
                    self.caught_up = false;
                    self.finished = Some(JobState::Failed);
                    return Some(self.catch_up().await);
                }
            }
        }
    }
}

/// SSE: the whole log so far, then new lines as they arrive; ends with an
/// `end` event when the job ends. One task per viewer, no thread.
///
/// A reconnecting EventSource sends `Last-Event-ID` (the last line's seq);
/// the stream then resumes after it instead of repeating the log.
async fn stream(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let job = visible_job(&state, &a.user, &id).await?;
    log_stream(&state, job, &headers, false).await
}

/// The SSE stream of `job`'s log (the page's HTML fragments, or JSON for
/// the API), resuming after `Last-Event-ID`.
pub(super) async fn log_stream(
    state: &AppState,
    job: Job,
    headers: &HeaderMap,
    json: bool,
) -> Result<Response, AppError> {
    let resume_after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|seq| *seq >= 0)
        .unwrap_or(0);
    // Subscribe before reading the database, so no line falls in between.
    let sub = state.jobs.log().watch(job.id);
    let current = state.jobs.get(job.id).await?.ok_or(AppError::NotFound)?;
    let feed = JobFeed {
        log: state.jobs.log().clone(),
        job_id: job.id,
        last: resume_after,
        sub,
        caught_up: false,
        json,
        finished: current.is_finished().then_some(current.state),
        done: false,
        meter: RateMeter::new(),
    };
    Ok(sse::stream(feed, state.shutdown.clone()).into_response())
}

#[derive(Deserialize)]
struct InstallForm {
    /// A Steam Guard code for this install, when Steam asked for one.
    #[serde(default)]
    steam_guard_code: Option<String>,
}

async fn install(
    State(state): State<AppState>,
    Admin(_): Admin,
    Protected { session, form, .. }: Protected<InstallForm>,
) -> Result<Response, AppError> {
    if let Some(code) = form.steam_guard_code.as_deref() {
        state.steam_guard.offer(code)?;
    }
    let queued = tasks::submit(&state.jobs, &Task::Install, None).await?;
    flash(
        &state,
        &session,
        &format!("Install job #{} queued.", queued.id),
    )
    .await?;
    Ok(Redirect::to(&format!("/jobs/{}", queued.id)).into_response())
}
