//! The built component and `wit/` can never drift: the world decoded from the component must
//! equal the world parsed from `wit/`, interface by interface, function by function, type by type.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wit_parser::{Handle, Resolve, Type, TypeDefKind, WorldId, WorldItem};

/// One line per world item: the interface's functions and named types, rendered structurally
/// and sorted (documentation and declaration order do not count).
fn describe_world(resolve: &Resolve, world: WorldId) -> BTreeMap<String, String> {
    let world = &resolve.worlds[world];
    let mut items = BTreeMap::new();
    for (direction, entries) in [("import", &world.imports), ("export", &world.exports)] {
        for (key, item) in entries {
            let name = format!("{direction} {}", resolve.name_world_key(key));
            let description = match item {
                WorldItem::Interface { id, .. } => {
                    let interface = &resolve.interfaces[*id];
                    let types = interface.types.iter().map(|(name, id)| {
                        format!(
                            "type {name} = {}",
                            describe_def(resolve, &resolve.types[*id].kind)
                        )
                    });
                    let functions = interface.functions.values().map(|f| {
                        let params: Vec<String> = f
                            .params
                            .iter()
                            .map(|p| format!("{}: {}", p.name, render(resolve, &p.ty)))
                            .collect();
                        let result = f
                            .result
                            .as_ref()
                            .map(|t| render(resolve, t))
                            .unwrap_or_default();
                        format!("func {}({}) -> {result}", f.name, params.join(", "))
                    });
                    {
                        // Declaration order is not part of the contract; the encoder reorders types.
                        let mut lines: Vec<String> = types.chain(functions).collect();
                        lines.sort();
                        lines.join("; ")
                    }
                }
                WorldItem::Function(f) => format!("func {}", f.name),
                WorldItem::Type { id, .. } => describe_def(resolve, &resolve.types[*id].kind),
            };
            items.insert(name, description);
        }
    }
    items
}

/// A type by name when it has one (its definition is described where it is declared).
fn render(resolve: &Resolve, ty: &Type) -> String {
    match ty {
        Type::Id(id) => {
            let def = &resolve.types[*id];
            match &def.name {
                Some(name) => name.clone(),
                None => describe_def(resolve, &def.kind),
            }
        }
        primitive => format!("{primitive:?}").to_lowercase(),
    }
}

/// `items` rendered by `show`, comma-separated.
fn comma_list<T>(items: impl IntoIterator<Item = T>, show: impl Fn(T) -> String) -> String {
    items.into_iter().map(show).collect::<Vec<_>>().join(", ")
}

fn describe_def(resolve: &Resolve, kind: &TypeDefKind) -> String {
    let opt = |t: &Option<Type>| {
        t.as_ref()
            .map(|t| render(resolve, t))
            .unwrap_or_else(|| "_".into())
    };
    match kind {
        TypeDefKind::Record(r) => format!(
            "record {{{}}}",
            comma_list(&r.fields, |f| format!(
                "{}: {}",
                f.name,
                render(resolve, &f.ty)
            ))
        ),
        TypeDefKind::Variant(v) => format!(
            "variant {{{}}}",
            comma_list(&v.cases, |c| format!("{}({})", c.name, opt(&c.ty)))
        ),
        TypeDefKind::Enum(e) => format!("enum {{{}}}", comma_list(&e.cases, |c| c.name.clone())),
        TypeDefKind::Flags(f) => format!("flags {{{}}}", comma_list(&f.flags, |c| c.name.clone())),
        TypeDefKind::Tuple(t) => format!("tuple<{}>", comma_list(&t.types, |t| render(resolve, t))),
        TypeDefKind::Option(t) => format!("option<{}>", render(resolve, t)),
        TypeDefKind::Result(r) => format!("result<{}, {}>", opt(&r.ok), opt(&r.err)),
        TypeDefKind::List(t) => format!("list<{}>", render(resolve, t)),
        TypeDefKind::Type(t) => render(resolve, t),
        // By the resource's name: the arena index in between depends on the encoder's order.
        TypeDefKind::Handle(Handle::Own(id)) => format!("own<{}>", render(resolve, &Type::Id(*id))),
        TypeDefKind::Handle(Handle::Borrow(id)) => {
            format!("borrow<{}>", render(resolve, &Type::Id(*id)))
        }
        other => format!("{other:?}"),
    }
}

fn parse_wit(dir: &Path) -> (Resolve, WorldId) {
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_dir(dir).expect("wit/ parses");
    let world = resolve
        .select_world(&[package], Some("vector-service"))
        .expect("the vector-service world");
    (resolve, world)
}

fn decode_component(bytes: &[u8]) -> (Resolve, WorldId) {
    match wit_component::decode(bytes).expect("the component decodes") {
        wit_component::DecodedWasm::Component(resolve, world) => (resolve, world),
        wit_component::DecodedWasm::WitPackage(..) => {
            panic!("expected a component, got a WIT package")
        }
    }
}

fn wit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit")
}

/// Differences between two world descriptions, empty when they agree.
fn differences(
    expected: &BTreeMap<String, String>,
    actual: &BTreeMap<String, String>,
) -> Vec<String> {
    let keys: std::collections::BTreeSet<_> = expected.keys().chain(actual.keys()).collect();
    keys.into_iter()
        .filter(|key| expected.get(*key) != actual.get(*key))
        .map(|key| {
            format!(
                "{key}\n  wit/:      {:?}\n  component: {:?}",
                expected.get(key),
                actual.get(key)
            )
        })
        .collect()
}

#[test]
fn the_built_component_implements_exactly_the_world_in_wit() {
    let (wit, wit_world) = parse_wit(&wit_dir());
    let (component, component_world) = decode_component(vector_service_runtime::BUILTIN_COMPONENT);
    let expected = describe_world(&wit, wit_world);
    let actual = describe_world(&component, component_world);
    assert!(expected.contains_key("export vector-service:plugin/retriever@0.4.0"));
    assert!(expected.contains_key("import wasi:logging/logging@0.1.0-draft"));
    assert_eq!(expected.len(), 14, "{:#?}", expected.keys());
    let drift = differences(&expected, &actual);
    assert!(
        drift.is_empty(),
        "wit/ and the built component differ:\n{}",
        drift.join("\n")
    );
    assert_eq!(
        wit.packages[wit.worlds[wit_world].package.unwrap()]
            .name
            .to_string(),
        vector_service_runtime::WIT_PACKAGE
    );
}

#[test]
fn an_edited_wit_without_a_rebuild_is_caught() {
    let copy = vector_service_testkit::fixtures::temp_dir("wit");
    copy_dir(&wit_dir(), &copy);
    let world_file = copy.join("vector-service.wit");
    let text = std::fs::read_to_string(&world_file).unwrap();
    let edited = text.replacen(
        "    backoff: func(attempt: u32);",
        "    backoff: func(attempt: u32);\n    sleep: func(ms: u32);",
        1,
    );
    assert_ne!(text, edited);
    std::fs::write(&world_file, edited).unwrap();

    let (wit, wit_world) = parse_wit(&copy);
    let (component, component_world) = decode_component(vector_service_runtime::BUILTIN_COMPONENT);
    let drift = differences(
        &describe_world(&wit, wit_world),
        &describe_world(&component, component_world),
    );
    assert_eq!(drift.len(), 1, "{drift:#?}");
    assert!(
        drift[0].starts_with("import vector-service:plugin/clock@0.4.0"),
        "{}",
        drift[0]
    );
    std::fs::remove_dir_all(copy).ok();
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
