//! Users and groups of the sandbox, read from its own `/etc/passwd` and `/etc/group` (no NSS: guestd is
//! statically linked and must not load libc's name-service modules).

use crate::error::{GuestError, GuestResult};

/// One user of the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
    /// Supplementary group ids (primary included).
    pub groups: Vec<u32>,
}

/// Where the account databases live (the sandbox root in production, a fixture in tests).
#[derive(Debug, Clone)]
pub struct UserDb {
    passwd: String,
    group: String,
}

impl Default for UserDb {
    fn default() -> Self {
        Self { passwd: "/etc/passwd".into(), group: "/etc/group".into() }
    }
}

impl UserDb {
    /// A database reading the given files.
    #[cfg(test)]
    pub fn at(passwd: &std::path::Path, group: &std::path::Path) -> Self {
        Self { passwd: passwd.display().to_string(), group: group.display().to_string() }
    }

    /// The user called `name` (or with numeric uid `name`); read fresh each time so users added at run
    /// time are seen.
    pub fn lookup(&self, name: &str) -> GuestResult<User> {
        let passwd = std::fs::read_to_string(&self.passwd).unwrap_or_default();
        let numeric = name.parse::<u32>().ok();
        let mut user = parse_passwd(&passwd)
            .find(|user| user.name == name || Some(user.uid) == numeric)
            .ok_or_else(|| GuestError::UnknownUser { user: name.to_owned() })?;
        let group = std::fs::read_to_string(&self.group).unwrap_or_default();
        user.groups = supplementary_groups(&group, &user.name, user.gid);
        Ok(user)
    }

    /// Name of uid `uid`, or the number itself.
    pub fn user_name(&self, uid: u32) -> String {
        let passwd = std::fs::read_to_string(&self.passwd).unwrap_or_default();
        let name = parse_passwd(&passwd).find(|user| user.uid == uid).map(|user| user.name);
        name.unwrap_or_else(|| uid.to_string())
    }

    /// Name of gid `gid`, or the number itself.
    pub fn group_name(&self, gid: u32) -> String {
        let group = std::fs::read_to_string(&self.group).unwrap_or_default();
        let name = group_entries(&group).find(|(_, id, _)| *id == gid).map(|(name, _, _)| name.to_owned());
        name.unwrap_or_else(|| gid.to_string())
    }
}

fn parse_passwd(text: &str) -> impl Iterator<Item = User> + '_ {
    text.lines().filter(|line| !line.starts_with('#')).filter_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 7 {
            return None;
        }
        Some(User {
            name: fields[0].to_owned(),
            uid: fields[2].parse().ok()?,
            gid: fields[3].parse().ok()?,
            home: fields[5].to_owned(),
            shell: fields[6].to_owned(),
            groups: Vec::new(),
        })
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = (&str, u32, &str)> + '_ {
    text.lines().filter(|line| !line.starts_with('#')).filter_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 4 {
            return None;
        }
        Some((fields[0], fields[2].parse().ok()?, fields[3]))
    })
}

fn supplementary_groups(group_text: &str, user: &str, primary: u32) -> Vec<u32> {
    let mut groups = vec![primary];
    for (_, gid, members) in group_entries(group_text) {
        if members.split(',').any(|member| member.trim() == user) && !groups.contains(&gid) {
            groups.push(gid);
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n# comment\nuser:x:1000:1000::/home/user:/bin/sh\nbroken\n";
    const GROUP: &str = "root:x:0:\nuser:x:1000:\nsudo:x:27:user,other\nadm:x:4:other\n";

    #[test]
    fn parses_users_and_supplementary_groups() {
        let users: Vec<User> = parse_passwd(PASSWD).collect();
        assert_eq!(users.len(), 2);
        assert_eq!(users[1].home, "/home/user");
        assert_eq!(supplementary_groups(GROUP, "user", 1000), vec![1000, 27]);
        assert_eq!(supplementary_groups(GROUP, "root", 0), vec![0]);
    }

    #[test]
    fn looks_up_by_name_and_uid_and_names_ids() {
        let dir = tempfile::tempdir().unwrap();
        let (passwd, group) = (dir.path().join("passwd"), dir.path().join("group"));
        std::fs::write(&passwd, PASSWD).unwrap();
        std::fs::write(&group, GROUP).unwrap();
        let db = UserDb::at(&passwd, &group);
        assert_eq!(db.lookup("user").unwrap().uid, 1000);
        assert_eq!(db.lookup("1000").unwrap().name, "user");
        assert!(matches!(db.lookup("ghost"), Err(GuestError::UnknownUser { .. })));
        assert_eq!(db.user_name(0), "root");
        assert_eq!(db.user_name(4242), "4242");
        assert_eq!(db.group_name(27), "sudo");
    }
}
