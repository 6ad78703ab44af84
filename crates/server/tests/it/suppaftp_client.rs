//! A Rust FTP client no one here wrote (suppaftp), in passive and active
//! mode, with byte-for-byte comparison, on both storage backends.

use std::io::Cursor;

use suppaftp::types::FileType;
use suppaftp::{FtpStream, Mode as FtpMode};

use crate::helpers::*;

on_both_backends!(suppaftp_round_trips_in_passive_and_active_mode,);

fn suppaftp_round_trips_in_passive_and_active_mode(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
    for (i, mode) in [FtpMode::Passive, FtpMode::ExtendedPassive, FtpMode::Active].into_iter().enumerate() {
        let mut ftp = FtpStream::connect(server.addr).unwrap();
        ftp.login("anonymous", "suppaftp@example.org").unwrap();
        ftp.set_mode(mode);
        ftp.transfer_type(FileType::Binary).unwrap();
        let body = random_bytes(2 * 1024 * 1024 + i, 100 + i as u64);
        let name = format!("suppa 文件 {i}.bin");
        ftp.put_file(&name, &mut Cursor::new(body.clone())).unwrap();
        assert!(server.files().read(&name) == Some(body.clone()), "{mode:?}: the stored bytes differ");
        let got = ftp.retr_as_buffer(&name).unwrap().into_inner();
        assert_eq!(got, body, "{mode:?}");
        let names = ftp.nlst(None).unwrap();
        assert!(names.contains(&name), "{names:?}");
        let list = ftp.list(None).unwrap();
        assert!(list.iter().any(|l| l.ends_with(&name)), "{list:?}");
        assert_eq!(ftp.size(&name).unwrap(), body.len());
        ftp.mkdir(format!("dir {i}")).unwrap();
        ftp.cwd(format!("dir {i}")).unwrap();
        assert_eq!(ftp.pwd().unwrap(), format!("/dir {i}"));
        ftp.cdup().unwrap();
        ftp.rename(&name, &format!("renamed {i}")).unwrap();
        ftp.rm(format!("renamed {i}")).unwrap();
        ftp.rmdir(format!("dir {i}")).unwrap();
        ftp.quit().unwrap();
    }
    server.files().assert_holds_only("", &[]);
}
