use super::*;
use std::fs;

const ONE: &str = "[runbooks.one]\nexecutor = \"automation\"\ntarget = \"One\"\n";
const TWO: &str = "[runbooks.two]\nexecutor = \"automation\"\ntarget = \"Two\"\n";
/// Line 3, column 12: not a known executor.
const BAD: &str = "[runbooks.two]\ntarget = \"Two\"\nexecutor = \"remote\"\n";

/// A catalog file in a fresh directory, removed on drop.
struct File(PathBuf);

impl File {
    fn new(name: &str, text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("chatops-live-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("runbooks.toml");
        fs::write(&path, text).unwrap();
        File(path)
    }

    fn live(&self) -> LiveCatalog {
        LiveCatalog::new(Catalog::load(&self.0).unwrap())
    }
}

impl Drop for File {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

fn names(catalog: &Catalog) -> Vec<&str> {
    catalog.runbooks.keys().map(String::as_str).collect()
}

#[test]
fn a_changed_file_is_put_in_force_and_held_catalogs_stay_as_they_were() {
    let file = File::new("changed", ONE);
    let live = file.live();
    let before = live.current();
    assert_eq!(live.reload().unwrap(), Reloaded::Unchanged);

    fs::write(&file.0, TWO).unwrap();
    let Reloaded::Changed { from, to } = live.reload().unwrap() else {
        panic!("not reloaded")
    };
    assert_eq!(from, before.version());
    assert_eq!(to, live.current().version());
    assert_eq!(names(&live.current()), ["two"]);
    // Whoever took the old one keeps it.
    assert_eq!(names(&before), ["one"]);
    assert_eq!(live.reload().unwrap(), Reloaded::Unchanged);
}

#[test]
fn a_bad_file_is_refused_with_its_place_and_the_old_catalog_stays() {
    let file = File::new("bad", ONE);
    let live = file.live();
    fs::write(&file.0, BAD).unwrap();
    let e = live.reload().unwrap_err().to_string();
    let place = format!("{}:3:12: ", file.0.display());
    assert!(e.starts_with(&place), "{e}");
    assert_eq!(names(&live.current()), ["one"]);
    live.reload_and_log(Trigger::Poll);
    assert_eq!(names(&live.current()), ["one"]);

    // Fixed: in force once two polls read it the same.
    fs::write(&file.0, TWO).unwrap();
    live.reload_and_log(Trigger::Poll);
    live.reload_and_log(Trigger::Poll);
    assert_eq!(names(&live.current()), ["two"]);
}

#[test]
fn a_missing_file_keeps_the_catalog_in_force() {
    let file = File::new("missing", ONE);
    let live = file.live();
    fs::remove_file(&file.0).unwrap();
    assert!(matches!(live.reload(), Err(CatalogError::Read { .. })));
    assert_eq!(names(&live.current()), ["one"]);
}

#[tokio::test]
async fn watching_polls_the_file() {
    let file = File::new("watch", ONE);
    let live = Arc::new(file.live());
    let watch = tokio::spawn(live.clone().watch(Duration::from_millis(20)).unwrap());
    fs::write(&file.0, TWO).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while names(&live.current()) != ["two"] {
        assert!(tokio::time::Instant::now() < deadline, "not reloaded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    watch.abort();
}

#[test]
fn a_catalog_the_check_refuses_is_not_put_in_force() {
    let file = File::new("check", ONE);
    let live = file.live().with_check(Box::new(|c| match c.get("two") {
        Some(_) => Err("no `two` here".to_owned()),
        None => Ok(()),
    }));
    fs::write(&file.0, TWO).unwrap();
    let e = live.reload().unwrap_err();
    assert!(matches!(e, CatalogError::Unusable { .. }), "{e}");
    assert!(e.to_string().ends_with(": no `two` here"), "{e}");
    assert_eq!(names(&live.current()), ["one"]);
}

#[test]
fn a_poll_puts_a_change_in_force_once_the_next_poll_reads_it_the_same() {
    let file = File::new("settle", ONE);
    let live = file.live();
    // Read half-written: the next poll reads something else, so it is never put in force.
    let half = &TWO[..TWO.len() - 10];
    fs::write(&file.0, half).unwrap();
    live.reload_and_log(Trigger::Poll);
    fs::write(&file.0, TWO).unwrap();
    live.reload_and_log(Trigger::Poll);
    assert_eq!(names(&live.current()), ["one"]);
    live.reload_and_log(Trigger::Poll);
    assert_eq!(names(&live.current()), ["two"]);
    // SIGHUP does not wait.
    fs::write(&file.0, ONE).unwrap();
    live.reload_and_log(Trigger::Signal);
    assert_eq!(names(&live.current()), ["one"]);
}

#[test]
fn an_emptied_file_is_refused() {
    let file = File::new("empty", ONE);
    let live = file.live();
    fs::write(&file.0, "\n").unwrap();
    let refused = live.reload().unwrap_err().to_string();
    assert!(refused.contains("the file is empty"), "{refused}");
    assert_eq!(names(&live.current()), ["one"]);
    fs::write(&file.0, "# nothing to run here for now\n").unwrap();
    assert!(matches!(live.reload(), Ok(Reloaded::Changed { .. })));
    assert!(live.current().runbooks.is_empty());
}
