//! `ferroftp user add|passwd|del|list`: edit the users file.

use std::io::BufRead;
use std::path::PathBuf;

use clap::Subcommand;
use ferroftp_server::auth::{hash_password, UserEntry, UsersFile, ANONYMOUS_NAMES};

/// Users-file subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user (password from a prompt, or --password-stdin).
    Add {
        /// The users file (created if missing).
        #[arg(long)]
        file: PathBuf,
        /// Login name.
        name: String,
        /// Home directory (the user's root).
        #[arg(long)]
        home: PathBuf,
        /// Allow uploads, deletes, renames, mkdir.
        #[arg(long)]
        write: bool,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change a user's password.
    Passwd {
        /// The users file.
        #[arg(long)]
        file: PathBuf,
        /// Login name.
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user.
    Del {
        /// The users file.
        #[arg(long)]
        file: PathBuf,
        /// Login name.
        name: String,
    },
    /// List users (never their hashes).
    List {
        /// The users file.
        #[arg(long)]
        file: PathBuf,
    },
}

fn read_password(from_stdin: bool) -> Result<String, String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("cannot read password: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        let first = rpassword::prompt_password("Password: ").map_err(|e| format!("cannot read password: {e}"))?;
        let again = rpassword::prompt_password("Again: ").map_err(|e| format!("cannot read password: {e}"))?;
        if first != again {
            return Err("passwords do not match".into());
        }
        first
    };
    if password.is_empty() {
        return Err("empty password refused".into());
    }
    Ok(password)
}

/// Runs one users-file subcommand.
pub fn run(cmd: UserCommand) -> Result<(), String> {
    let err = |e: ferroftp_server::auth::AuthError| e.to_string();
    match cmd {
        UserCommand::Add { file, name, home, write, password_stdin } => {
            if ANONYMOUS_NAMES.contains(&name.to_ascii_lowercase().as_str())
                || name.is_empty()
                || name.contains(char::is_whitespace)
            {
                return Err(format!("{name:?} cannot be a user name"));
            }
            let mut users = UsersFile::load_or_default(&file).map_err(err)?;
            if users.find(&name).is_some() {
                return Err(format!("user {name:?} exists already; use `ferroftp user passwd`"));
            }
            if !home.is_dir() {
                return Err(format!("home {} is not a directory", home.display()));
            }
            let home = home.canonicalize().map_err(|e| format!("home {}: {e}", home.display()))?;
            let password = hash_password(&read_password(password_stdin)?).map_err(err)?;
            users.user.push(UserEntry::new(name.clone(), password, home, write));
            users.save(&file).map_err(err)?;
            println!("added user {name}");
        }
        UserCommand::Passwd { file, name, password_stdin } => {
            let mut users = UsersFile::load(&file).map_err(err)?;
            let hash = hash_password(&read_password(password_stdin)?).map_err(err)?;
            let user =
                users.user.iter_mut().find(|u| u.name == name).ok_or_else(|| format!("no user named {name:?}"))?;
            user.password = hash;
            users.save(&file).map_err(err)?;
            println!("password changed for {name}");
        }
        UserCommand::Del { file, name } => {
            let mut users = UsersFile::load(&file).map_err(err)?;
            let before = users.user.len();
            users.user.retain(|u| u.name != name);
            if users.user.len() == before {
                return Err(format!("no user named {name:?}"));
            }
            users.save(&file).map_err(err)?;
            println!("deleted user {name}");
        }
        UserCommand::List { file } => {
            let users = UsersFile::load(&file).map_err(err)?;
            for u in &users.user {
                let rights = u.rights();
                let summary = if rights == ferroftp_server::permissions::Permissions::ALL {
                    "read-write".to_string()
                } else if rights == ferroftp_server::permissions::Permissions::READ_ONLY {
                    "read-only".to_string()
                } else {
                    format!("{rights:?}")
                };
                println!("{}\t{summary}\t{}", u.name, u.home.display());
            }
        }
    }
    Ok(())
}
