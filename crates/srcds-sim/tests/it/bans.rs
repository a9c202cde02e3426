//! Steam id bans as the engine keeps them: `banid` (timed or permanent,
//! with `kick`), `listid`, `removeid`, `writeid`, and a banned player
//! refused at validation — also after a restart that execs banned_user.cfg.

use crate::util::*;
use std::time::Duration;

const CFG: &str = "rcon_password s3cret\nexec banned_user.cfg\n";

fn joined(rcon: &mut Rcon, id: i32, who: &str) -> String {
    rcon.exec(id, &format!("sim_join {who}")).0
}

#[test]
fn banid_kicks_lists_removes_and_refuses_the_player() {
    let root = Root::installed(CFG);
    let sim = Sim::start(
        &root,
        &["+map", "c1m1_hotel", "-sim_churn", "0", "-sim_players", "0"],
    );
    let mut rcon = Rcon::connect(sim.addr());
    assert_eq!(rcon.auth("s3cret"), 1);

    assert_eq!(rcon.exec(2, "listid").0, "ID filter list: empty\n");
    assert!(joined(&mut rcon, 3, "Griefer STEAM_1:0:1234").starts_with("sim_join: userid "));
    assert!(rcon
        .exec(4, "status")
        .0
        .contains("\"Griefer\" STEAM_1:0:1234"));

    // By Steam id with kick: the player is dropped with the engine's reason.
    assert_eq!(rcon.exec(5, "banid 0 STEAM_1:0:1234 kick").0, "");
    sim.wait_console("Dropped Griefer from server (Kicked and banned)");
    assert!(!rcon.exec(6, "status").0.contains("Griefer"));
    assert_eq!(
        rcon.exec(7, "listid").0,
        "ID filter list: 1 entry\n1 STEAM_1:0:1234 : permanent\n"
    );

    // kickid: by userid or Steam id, the message is the drop reason.
    let out = joined(&mut rcon, 30, "Loud STEAM_1:0:55");
    let loud = out
        .trim_end()
        .strip_prefix("sim_join: userid ")
        .unwrap()
        .to_string();
    assert_eq!(rcon.exec(31, &format!("kickid {loud} \"language\"")).0, "");
    sim.wait_console("Dropped Loud from server (language)");
    assert_eq!(rcon.exec(32, "kickid 99 x").0, "userid \"99\" not found\n");
    assert_eq!(
        rcon.exec(33, "kickid STEAM_1:0:99").0,
        "uniqueid \"STEAM_1:0:99\" not found\n"
    );

    // Joining again is refused at validation, in either id notation.
    assert_eq!(
        joined(&mut rcon, 8, "Griefer STEAM_1:0:1234"),
        "sim_join: STEAM UserID STEAM_1:0:1234 is banned\n"
    );
    assert_eq!(
        joined(&mut rcon, 9, "Again [U:1:2468]"),
        "sim_join: STEAM UserID STEAM_1:0:1234 is banned\n"
    );
    sim.wait_console("Dropped Again from server (STEAM UserID STEAM_1:0:1234 is banned)");

    // A timed ban by userid, without kick: listed with its minutes, the
    // player stays.
    let out = joined(&mut rcon, 10, "Timed STEAM_1:1:77");
    let userid = out.trim_end().strip_prefix("sim_join: userid ").unwrap();
    assert_eq!(rcon.exec(11, &format!("banid 30 {userid}")).0, "");
    assert!(rcon.exec(12, "status").0.contains("\"Timed\""));
    assert_eq!(
        rcon.exec(13, "listid").0,
        "ID filter list: 2 entries\n1 STEAM_1:0:1234 : permanent\n2 STEAM_1:1:77 : 30.000 min\n"
    );

    // Bad input gets the engine's messages and changes nothing.
    assert_eq!(
        rcon.exec(14, "banid 0 STEAM_ID_LAN").0,
        "Can't ban users with ID \"STEAM_ID_LAN\"\n"
    );
    assert_eq!(
        rcon.exec(15, "banid 0 99").0,
        "banid:  couldn't find userid 99\n"
    );
    assert_eq!(
        rcon.exec(16, "banid 0").0,
        "Usage:  banid < minutes > < userid | uniqueid > { kick }\nUse 0 minutes for permanent\n"
    );
    assert_eq!(rcon.exec(17, "removeid 7").0, "removeid:  invalid slot 6\n");
    assert_eq!(
        rcon.exec(18, "removeid nobody").0,
        "removeid:  invalid ban ID \"nobody\"\n"
    );
    assert_eq!(
        rcon.exec(19, "removeid STEAM_1:0:9").0,
        "removeid:  couldn't find STEAM_1:0:9\n"
    );
    assert!(rcon
        .exec(20, "listid")
        .0
        .starts_with("ID filter list: 2 entries\n"));

    // writeid keeps only permanent bans, as `banid 0 <id>` lines.
    assert_eq!(rcon.exec(21, "writeid").0, "Writing cfg/banned_user.cfg.\n");
    let written =
        std::fs::read_to_string(root.installation().join("left4dead2/cfg/banned_user.cfg"))
            .unwrap();
    assert_eq!(written, "banid 0 STEAM_1:0:1234\r\n");

    // removeid by slot and by id.
    assert_eq!(
        rcon.exec(22, "removeid 2").0,
        "removeid:  filter removed for 2, ID STEAM_1:1:77\n"
    );
    assert_eq!(
        rcon.exec(23, "removeid [U:1:2468]").0,
        "removeid:  filter removed for STEAM_1:0:1234\n"
    );
    assert_eq!(rcon.exec(24, "listid").0, "ID filter list: empty\n");
    assert!(joined(&mut rcon, 25, "Griefer STEAM_1:0:1234").starts_with("sim_join: userid "));
}

#[test]
fn a_timed_ban_expires() {
    let root = Root::installed(CFG);
    let sim = Sim::start(&root, &["+map", "c1m1_hotel", "-sim_churn", "0"]);
    let mut rcon = Rcon::connect(sim.addr());
    assert_eq!(rcon.auth("s3cret"), 1);
    // 0.02 minutes: 1.2 s.
    assert_eq!(rcon.exec(2, "banid 0.02 STEAM_1:1:5").0, "");
    assert_eq!(
        rcon.exec(3, "listid").0,
        "ID filter list: 1 entry\n1 STEAM_1:1:5 : 0.020 min\n"
    );
    assert!(joined(&mut rcon, 4, "Short STEAM_1:1:5").contains("is banned"));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(rcon.exec(5, "listid").0, "ID filter list: empty\n");
    assert!(joined(&mut rcon, 6, "Short STEAM_1:1:5").starts_with("sim_join: userid"));
}

#[test]
fn banned_user_cfg_applies_bans_at_start() {
    let root = Root::installed(CFG);
    root.write_cfg(
        "banned_user.cfg",
        "banid 0 STEAM_1:1:4242\r\nbanid 60 [U:1:10]\r\n",
    );
    let sim = Sim::start(&root, &["+map", "c1m1_hotel", "-sim_churn", "0"]);
    let mut rcon = Rcon::connect(sim.addr());
    assert_eq!(rcon.auth("s3cret"), 1);
    assert_eq!(
        rcon.exec(2, "listid").0,
        "ID filter list: 2 entries\n1 STEAM_1:1:4242 : permanent\n2 STEAM_1:0:5 : 60.000 min\n"
    );
    assert_eq!(
        joined(&mut rcon, 3, "Back STEAM_1:1:4242"),
        "sim_join: STEAM UserID STEAM_1:1:4242 is banned\n"
    );
}
