//! The busy game (`-sim_busy`): survivor bots in `status`, special
//! infected churn with kill lines, chat, hibernation and waking, all
//! driven step by step with `sim_step` and a fixed `-sim_seed`.

use crate::util::*;
use std::time::Duration;

const PASSWORD: &str = "s3cret";

fn root(extra_cfg: &str) -> Root {
    let root = Root::new();
    root.install();
    root.write_server_cfg(&format!("rcon_password {PASSWORD}\n{extra_cfg}"));
    root
}

/// A busy server whose own timer never fires during a test (steps come
/// from `sim_step`), with `seed` and `players` humans.
fn busy(root: &Root, seed: &str, players: &str, extra: &[&str]) -> Sim {
    let mut args = vec![
        "+map",
        "c2m1_highway",
        "-sim_players",
        players,
        "-sim_churn",
        "0",
        "-sim_busy",
        "3600",
        "-sim_seed",
        seed,
    ];
    args.extend_from_slice(extra);
    Sim::start(root, &args)
}

fn rcon(sim: &Sim, command: &str) -> String {
    test_support::sim::rcon(sim.port, PASSWORD, command)
}

/// Runs `n` game steps and waits until their console output has been read
/// (a `say` from the console prints after them).
fn steps(sim: &Sim, n: u32, marker: &str) {
    assert_eq!(rcon(sim, &format!("sim_step {n}")), "");
    rcon(sim, &format!("say {marker}"));
    sim.wait_console(&format!("Console: {marker}"));
}

/// The `players :` line and the bot rows of `status`.
fn status_parts(sim: &Sim) -> (String, Vec<String>) {
    let status = rcon(sim, "status");
    let header = status
        .lines()
        .find(|l| l.starts_with("players :"))
        .unwrap_or_else(|| panic!("no players line in {status}"))
        .to_string();
    let bots = status
        .lines()
        .filter(|l| l.ends_with(" BOT active"))
        .map(str::to_string)
        .collect();
    (header, bots)
}

/// A2S_INFO's players and bots bytes.
fn a2s_counts(sim: &Sim) -> (u8, u8) {
    let info = test_support::sim::wait_for_a2s(sim.port, Duration::from_secs(5))
        .expect("A2S_INFO answered");
    (info.players, info.bots)
}

/// Console lines that are HL log lines, without their time stamps.
fn log_events(sim: &Sim) -> Vec<String> {
    sim.console_text()
        .lines()
        .filter(|l| l.starts_with("L ") && l.len() > 25)
        .map(|l| l[25..].to_string())
        .filter(|e| {
            !e.starts_with("\"Console<0><Console><Console>\" say") && !e.starts_with("rcon from")
        })
        .collect()
}

#[test]
fn survivor_bots_fill_empty_slots_as_bot_rows_while_the_header_says_zero_bots() {
    let root = root("log on\n");
    let sim = busy(&root, "7", "1", &[]);
    let (header, bots) = status_parts(&sim);
    assert!(
        header.starts_with("players : 1 humans, 0 bots (4 max) (not hibernating)"),
        "{header}"
    );
    assert_eq!(
        bots.len(),
        3,
        "three survivor bots beside one human: {bots:?}"
    );
    for row in &bots {
        // `#  3 "Coach" BOT active`: userid, quoted name, BOT, state.
        let body = row.strip_prefix('#').expect("row starts with #");
        let (uid, rest) = body.trim_start().split_once(' ').unwrap();
        assert!(uid.parse::<u32>().is_ok(), "{row}");
        let name = rest.strip_suffix(" BOT active").unwrap();
        assert!(
            ["\"Nick\"", "\"Rochelle\"", "\"Coach\"", "\"Ellis\""].contains(&name),
            "{row}"
        );
    }
    // The status parser of the panel reads the same table.
    let parsed = source_proto::status::parse_status(&rcon(&sim, "status")).unwrap();
    assert_eq!(parsed.players.iter().filter(|p| p.is_bot).count(), 3);
    assert_eq!(parsed.bots, Some(0));
    // A2S agrees with the header: one player, no bots.
    assert_eq!(a2s_counts(&sim), (1, 0));
    // The bots arrived like the engine's fake clients.
    let events = log_events(&sim);
    assert!(
        events
            .iter()
            .any(|e| e.ends_with("<BOT><>\" connected, address \"none\"")),
        "{events:#?}"
    );

    // A second human takes a bot's slot.
    assert!(rcon(&sim, "sim_join Zed").starts_with("sim_join: userid"));
    let (header, bots) = status_parts(&sim);
    assert!(header.starts_with("players : 2 humans, 0 bots"), "{header}");
    assert_eq!(bots.len(), 2, "{bots:?}");
    assert_eq!(a2s_counts(&sim), (2, 0));
}

/// Splits one extended L4D player block `"Name<a><b>…"` into its fields.
fn block_fields(block: &str) -> (String, Vec<String>) {
    let inner = block
        .strip_prefix('"')
        .and_then(|b| b.strip_suffix('"'))
        .unwrap_or_else(|| panic!("not quoted: {block}"));
    let open = inner.find('<').unwrap();
    let name = inner[..open].to_string();
    let fields = inner[open + 1..inner.len() - 1]
        .split("><")
        .map(str::to_string)
        .collect();
    (name, fields)
}

fn check_extended_block(block: &str, team: &str, life: &str) -> (String, String) {
    let (name, f) = block_fields(block);
    assert_eq!(
        f.len(),
        8,
        "uid, steam, team, character, life, health, position, area: {block}"
    );
    assert!(f[0].parse::<u32>().is_ok(), "{block}");
    assert!(f[1] == "BOT" || f[1].starts_with("STEAM_1:"), "{block}");
    assert_eq!(f[2], team, "{block}");
    assert!(!f[3].is_empty(), "{block}");
    assert_eq!(f[4], life, "{block}");
    let health_ok = match life {
        "ALIVE" => f[5]
            .split_once('+')
            .is_some_and(|(h, t)| h.parse::<u32>().is_ok() && t.parse::<u32>().is_ok()),
        _ => f[5].parse::<i32>().is_ok_and(|h| h < 0),
    };
    assert!(health_ok, "{block}");
    let pos = f[6].strip_prefix("setpos_exact ").expect("setpos_exact");
    let (xyz, ang) = pos.split_once("; setang ").expect("setang");
    assert_eq!(
        xyz.split(' ').filter(|n| n.parse::<f64>().is_ok()).count(),
        3,
        "{block}"
    );
    assert_eq!(
        ang.split(' ').filter(|n| n.parse::<f64>().is_ok()).count(),
        3,
        "{block}"
    );
    assert!(
        f[7].strip_prefix("Area ")
            .is_some_and(|a| a.parse::<u32>().is_ok()),
        "{block}"
    );
    (name, f[0].clone())
}

#[test]
fn versus_special_infected_join_die_with_kill_lines_and_leave() {
    let listener = LogListener::on("127.0.0.2");
    let root = root(&format!(
        "mp_gamemode versus\nlogaddress_add {}\nlog on\n",
        listener.addr()
    ));
    let sim = busy(&root, "11", "2", &[]);
    steps(&sim, 200, "done");
    let events = log_events(&sim);

    let joined: Vec<&String> = events
        .iter()
        .filter(|e| e.ends_with("<BOT><>\" joined team \"Infected\""))
        .collect();
    let left: Vec<(usize, &String)> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            e.ends_with("<BOT><Infected>\" disconnected (reason \"Kicked by Console : death anim finished\")")
        })
        .collect();
    assert!(
        joined.len() >= 20,
        "specials keep spawning: {}",
        joined.len()
    );
    assert!(left.len() >= 20, "and dying: {}", left.len());
    for (i, line) in &left {
        // Each leaving special was just killed by a survivor.
        let kill = &events[i - 1];
        let rest = kill
            .strip_prefix("(DEATH)")
            .unwrap_or_else(|| panic!("{kill}"));
        let (killer, rest) = rest.split_once(" killed ").unwrap();
        let (victim, weapon) = rest.split_once(" with ").unwrap();
        check_extended_block(killer, "Survivor", "ALIVE");
        let (name, uid) = check_extended_block(victim, "Infected", "DEAD");
        assert!(
            ["Boomer", "Smoker", "Hunter", "Spitter", "Jockey", "Charger"].contains(&name.as_str()),
            "{kill}"
        );
        assert!(
            line.starts_with(&format!("\"{name}<{uid}><BOT><Infected>\"")),
            "{line}"
        );
        assert!(
            weapon.starts_with('"') && weapon.ends_with('"') && weapon.len() > 2,
            "{kill}"
        );
    }
    // Never more than the infected team's four slots alive at once.
    let mut alive = 0i32;
    for e in &events {
        if e.ends_with("<BOT><>\" joined team \"Infected\"") {
            alive += 1;
        } else if e.ends_with("death anim finished\")") {
            alive -= 1;
        }
        assert!((0..=4).contains(&alive), "{alive} specials at once");
    }
    // Humans chat.
    assert!(
        events
            .iter()
            .any(|e| e.contains("<STEAM_1:")
                && (e.contains(" say \"") || e.contains(" say_team \""))),
        "nobody said anything in 200 steps"
    );
    // The same lines went out over UDP to 127.0.0.2 (a socket, not the
    // engine's loopback queue).
    listener.wait_for("death anim finished");
    listener.wait_for("(DEATH)\"");
}

#[test]
fn the_same_seed_and_steps_give_the_same_game() {
    let root = root("log on\n");
    let runs: Vec<Vec<String>> = (0..2)
        .map(|_| {
            let mut sim = busy(&root, "4242", "2", &[]);
            steps(&sim, 60, "done");
            let events = log_events(&sim)
                .into_iter()
                // `Log file started` names the date-stamped file.
                .filter(|e| !e.starts_with("Log file started") && !e.starts_with("rcon from"))
                .collect();
            sim.stop();
            events
        })
        .collect();
    assert!(runs[0].len() > 40, "{:#?}", runs[0]);
    assert_eq!(runs[0], runs[1]);
}

#[test]
fn an_empty_server_hibernates_without_bots_or_lines_and_wakes_on_a_join() {
    let root = root("log on\n");
    let sim = busy(&root, "5", "1", &[]);
    assert_eq!(status_parts(&sim).1.len(), 3);
    assert_eq!(rcon(&sim, "sim_leave"), "");
    sim.wait_console("Server is hibernating");
    let (header, bots) = status_parts(&sim);
    assert!(
        header.starts_with("players : 0 humans, 0 bots (4 max) (hibernating)"),
        "{header}"
    );
    assert!(bots.is_empty(), "{bots:?}");
    assert_eq!(a2s_counts(&sim), (0, 0));
    let before = log_events(&sim).len();
    steps(&sim, 100, "asleep");
    let after: Vec<String> = log_events(&sim).into_iter().skip(before).collect();
    assert!(
        after.is_empty(),
        "a hibernating server logs nothing: {after:#?}"
    );

    // A human wakes it, and the bots are back.
    assert!(rcon(&sim, "sim_join Zed").starts_with("sim_join: userid"));
    let (header, bots) = status_parts(&sim);
    assert!(header.contains("(not hibernating)"), "{header}");
    assert_eq!(bots.len(), 3, "{bots:?}");
    assert_eq!(a2s_counts(&sim), (1, 0));
    steps(&sim, 100, "awake");
    let woke = log_events(&sim).len();
    assert!(woke > before + 10, "the game goes on after waking");
}

#[test]
fn without_hibernation_the_bots_play_on_alone() {
    let root = root("sv_hibernate_when_empty 0\nlog on\n");
    let sim = busy(&root, "9", "0", &[]);
    let (header, bots) = status_parts(&sim);
    assert!(
        header.contains("0 humans, 0 bots (4 max) (not hibernating)"),
        "{header}"
    );
    assert_eq!(bots.len(), 4, "{bots:?}");
    assert!(!sim.console_text().contains("Server is hibernating"));
}

#[test]
fn quiet_servers_have_no_bots_and_refuse_steps() {
    let root = root("");
    let sim = Sim::start(
        &root,
        &["+map", "c1m1_hotel", "-sim_players", "1", "-sim_churn", "0"],
    );
    let (header, bots) = status_parts(&sim);
    assert!(header.starts_with("players : 1 humans, 0 bots"), "{header}");
    assert!(bots.is_empty());
    assert_eq!(rcon(&sim, "sim_step"), "sim_step: only with -sim_busy\n");
    let busy_sim = busy(&root, "1", "1", &[]);
    assert_eq!(
        rcon(&busy_sim, "sim_step 0"),
        "Usage:  sim_step [steps 1-10000]\n"
    );
    assert_eq!(
        rcon(&busy_sim, "sim_step lots"),
        "Usage:  sim_step [steps 1-10000]\n"
    );
}
