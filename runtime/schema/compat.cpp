#include "compat.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

namespace sage::schema {

std::string_view to_string(Severity s) { return s == Severity::note ? "note" : "error"; }
std::string_view to_string(Level l) { return l == Level::wire ? "wire" : "json"; }

bool Comparison::compatible() const {
  return std::none_of(diagnostics.begin(), diagnostics.end(),
                      [](const Diagnostic& d) { return d.severity == Severity::error; });
}

std::string Comparison::text() const {
  std::string out;
  for (const auto& d : diagnostics) out += std::string(to_string(d.severity)) + ": " + d.text + "\n";
  return out;
}

namespace {

using Side = Diagnostic::Side;
using Anchor = Diagnostic::Anchor;

class Comparer {
 public:
  Comparer(const Description& o, const Description& n, const CompareOptions& opt, Comparison& out)
      : o_(o), n_(n), opt_(opt), out_(out) {}

  void run() {
    std::map<std::string, const Message*> new_by_name;
    std::map<int, const Message*> new_by_pt;
    for (const auto& m : n_.messages) {
      new_by_name.emplace(n_.definitions[m.definition].name, &m);
      new_by_pt.emplace(m.packet_type, &m);
    }
    std::set<int> matched_new;
    for (const auto& om : o_.messages) {
      const auto& od = o_.definitions[om.definition];
      const std::string pt = std::to_string(om.packet_type);
      if (auto it = new_by_name.find(od.name); it != new_by_name.end()) {
        const auto& nm = *it->second;
        matched_new.insert(nm.packet_type);
        if (nm.packet_type != om.packet_type)
          error(Side::new_schema, od.name, "", Anchor::packet_type,
                peers() ? differs(od.name, "packet_type " + pt, "packet_type " + std::to_string(nm.packet_type))
                        : "packet_type of " + od.name + " changed from " + pt + " to " +
                              std::to_string(nm.packet_type) + "; peers built from the old schemas use " + pt);
        enqueue(om.definition, nm.definition);
        drain();
        continue;
      }
      if (auto it = new_by_pt.find(om.packet_type); it != new_by_pt.end()) {
        const auto& nd = n_.definitions[it->second->definition];
        matched_new.insert(om.packet_type);
        error(Side::new_schema, nd.name, "", Anchor::packet_type,
              (peers() ? differs("packet_type " + pt, od.name, nd.name)
                       : "packet_type " + pt + " of " + nd.name + " was used by " + od.name + " in the old schemas") +
                  "; peers would decode one as the other (a wire message's qualified name is "
                  "its identity: a renamed message is a new message and needs a new packet_type)");
        continue;
      }
      out_.only_old.push_back(om.packet_type);
      if (!opt_.history || !old_writes()) continue;
      const bool still_table = std::any_of(n_.definitions.begin(), n_.definitions.end(), [&](const Definition& d) {
        return d.kind == Kind::table && d.name == od.name;
      });
      if (still_table)
        error(Side::new_schema, od.name, "", Anchor::definition, "message " + od.name + " lost its packet_type " + pt);
      else
        error(Side::old_schema, od.name, "", Anchor::definition,
              "message " + od.name + " (packet_type " + pt + ") was removed; peers built from the old schemas still send it");
    }
    std::map<int, const Message*> old_by_pt;
    for (const auto& om : o_.messages) old_by_pt.emplace(om.packet_type, &om);
    for (const auto& nm : n_.messages) {
      if (matched_new.count(nm.packet_type)) continue;
      const auto it = old_by_pt.find(nm.packet_type);
      if (it == old_by_pt.end()) {
        out_.only_new.push_back(nm.packet_type);
        continue;
      }
      // The old message of this packet_type moved to another one (reported above); this is a third.
      const auto& nd = n_.definitions[nm.definition];
      const std::string& on = o_.definitions[it->second->definition].name;
      const std::string npt = std::to_string(nm.packet_type);
      error(Side::new_schema, nd.name, "", Anchor::packet_type,
            (peers() ? differs("packet_type " + npt, on, nd.name)
                     : "packet_type " + npt + " of " + nd.name + " was used by " + on + " in the old schemas") +
                "; peers would decode one as the other");
    }
  }

 private:
  // Compares everything reachable from the pairs enqueued so far (one wire message at a time).
  // Bounded: a hostile pair of descriptions could pair one large definition with thousands of others.
  void drain() {
    while (!work_.empty() && !over_budget_) {
      const auto [oi, ni] = work_.back();
      work_.pop_back();
      const auto& od = o_.definitions[oi];
      const auto& nd = n_.definitions[ni];
      steps_ += 1 + od.fields.size() + nd.fields.size() + od.values.size() + nd.values.size();
      if (steps_ > max_compare_steps) {
        over_budget_ = true;
        error(Side::new_schema, nd.name, "", Anchor::definition,
              "the descriptions are too large to compare (more than " + std::to_string(max_compare_steps) +
                  " fields and values visited)");
        return;
      }
      compare_definition(od, nd);
    }
  }

  bool old_writes() const { return opt_.direction != Direction::new_to_old; }
  // Two peers (history false): sentences name both sides ("is A in <old> but B in <new>"), never
  // "the old schemas". `as_history` is the sentence of sagec check (old -> new).
  bool peers() const { return !opt_.history; }
  std::string in_old() const { return " in " + opt_.old_name; }
  std::string in_new() const { return " in " + opt_.new_name; }
  std::string differs(const std::string& subject, const std::string& a, const std::string& b) const {
    return subject + " is " + a + in_old() + " but " + b + in_new();
  }
  bool new_writes() const { return opt_.direction != Direction::old_to_new; }

  void add(Severity s, Side side, const std::string& def, const std::string& field, Anchor a, std::string text) {
    if (over_budget_) return;
    if (out_.diagnostics.size() == max_compare_diagnostics) {
      over_budget_ = true;
      s = Severity::error;
      text = "more than " + std::to_string(max_compare_diagnostics) + " differences; the comparison stopped here";
    }
    Diagnostic d;
    d.severity = s;
    d.side = side;
    d.definition = def;
    d.field = over_budget_ ? std::string() : field;
    d.anchor = a;
    d.text = std::move(text);
    out_.diagnostics.push_back(std::move(d));
  }
  void error(Side side, const std::string& def, const std::string& field, Anchor a, std::string text) {
    add(Severity::error, side, def, field, a, std::move(text));
  }
  // A rename: a note at wire level, an error at json level.
  void rename(const std::string& def, const std::string& field, Anchor a, const std::string& text) {
    if (opt_.level == Level::wire)
      add(Severity::note, Side::new_schema, def, field, a, text + " (binary peers are unaffected)");
    else
      add(Severity::error, Side::new_schema, def, field, a,
          text + "; JSON (sagec encode/decode, --level json) uses the old name");
  }

  // Work list instead of recursion: each (old, new) pair of definitions once, depth first in field order.
  void enqueue(std::uint32_t oi, std::uint32_t ni) {
    if (done_.insert({oi, ni}).second) pending_.push_back({oi, ni});
    flush_pending();
  }
  void flush_pending() {
    // Keep field order: pairs found while comparing one definition are compared in the order found.
    for (auto it = pending_.rbegin(); it != pending_.rend(); ++it) work_.push_back(*it);
    pending_.clear();
  }

  // Same shape and same kind of element (definitions compared separately). Returns false on a type change.
  bool same_type(const Type& a, const Type& b) {
    if (a.shape != b.shape || a.array_length != b.array_length || a.element != b.element) return false;
    if (a.element == Type::Element::scalar) return a.scalar == b.scalar;
    if (a.element == Type::Element::string) return true;
    const auto& od = o_.definitions[a.definition];
    const auto& nd = n_.definitions[b.definition];
    if (od.kind != nd.kind) return false;
    if (od.kind == Kind::enum_ && od.underlying != nd.underlying) return false;
    return true;
  }
  void follow(const Type& a, const Type& b) {
    if (a.element == Type::Element::definition && b.element == Type::Element::definition &&
        done_.insert({a.definition, b.definition}).second)
      pending_.push_back({a.definition, b.definition});
  }

  void compare_definition(const Definition& od, const Definition& nd) {
    if (od.kind != nd.kind) {
      const std::string a = "a " + std::string(to_string(od.kind)), b = "a " + std::string(to_string(nd.kind));
      error(Side::new_schema, nd.name, "", Anchor::definition,
            peers() ? differs(nd.name, a, b) : nd.name + " changed from " + a + " to " + b);
      return;
    }
    if (od.name != nd.name)
      add(Severity::note, Side::new_schema, nd.name, "", Anchor::definition,
          std::string(to_string(od.kind)) + " " + od.name + " is now " + nd.name +
              " (renamed or moved to another namespace; its name is not on the wire or in JSON)");
    switch (od.kind) {
      case Kind::table: compare_table(od, nd); break;
      case Kind::struct_: compare_struct(od, nd); break;
      case Kind::enum_: compare_enum(od, nd); break;
      case Kind::union_: compare_union(od, nd); break;
    }
    flush_pending();
  }

  // Fields of one table by id and by name (maps: a hostile description may have thousands).
  struct FieldIndex {
    std::map<std::uint32_t, const Field*> ids;
    std::map<std::string_view, const Field*> names;
    explicit FieldIndex(const Definition& d) {
      for (const auto& f : d.fields) {
        ids.emplace(f.id, &f);
        names.emplace(f.name, &f);
      }
    }
    const Field* id(std::uint32_t i) const {
      const auto it = ids.find(i);
      return it == ids.end() ? nullptr : it->second;
    }
    const Field* name(std::string_view n) const {
      const auto it = names.find(n);
      return it == names.end() ? nullptr : it->second;
    }
  };
  struct ValueIndex {
    std::map<std::string_view, const EnumValue*> names, values;
    explicit ValueIndex(const Definition& d) {
      for (const auto& v : d.values) {
        names.emplace(v.name, &v);
        values.emplace(v.value, &v);
      }
    }
    const EnumValue* name(std::string_view n) const {
      const auto it = names.find(n);
      return it == names.end() ? nullptr : it->second;
    }
    const EnumValue* value(std::string_view v) const {
      const auto it = values.find(v);
      return it == values.end() ? nullptr : it->second;
    }
  };

  // Built once per definition: a definition can be paired with many others.
  static const FieldIndex& index_of(std::map<const Definition*, FieldIndex>& cache, const Definition& d) {
    auto it = cache.find(&d);
    if (it == cache.end()) it = cache.emplace(&d, FieldIndex(d)).first;
    return it->second;
  }

  void compare_table(const Definition& od, const Definition& nd) {
    const std::string& t = nd.name;
    const FieldIndex& olds = index_of(old_fields_, od);
    const FieldIndex& news = index_of(new_fields_, nd);
    for (const auto& of : od.fields) {
      if (of.deprecated) {
        const Field* nf = news.id(of.id);
        if (nf != nullptr && nf->required && !nf->deprecated && old_writes())
          error(Side::new_schema, t, nf->name, Anchor::field,
                peers() ? "field " + t + "." + nf->name + " is deprecated" + in_old() + " but required" + in_new() +
                              "; " + opt_.old_name + " never writes it"
                        : "field " + t + "." + nf->name +
                              " is required but deprecated in the old schemas; peers built from them never write it");
        continue;
      }
      auto what = [&] { return "field " + t + "." + of.name; };  // built only for a diagnostic
      const Field* moved = news.name(of.name);
      if (moved != nullptr && moved->id != of.id) {
        const std::string a = "id " + std::to_string(of.id), b = "id " + std::to_string(moved->id);
        error(Side::new_schema, t, of.name, Anchor::field,
              (peers() ? what() + " has " + a + in_old() + " but " + b + in_new() : what() + " moved from " + a + " to " + b) +
                  " (fields reordered or inserted); add new fields at the end");
        continue;
      }
      const Field* nf = news.id(of.id);
      if (nf == nullptr) {
        if (!opt_.history) continue;  // a peer without the field: FlatBuffers ignores it / uses the default
        error(Side::new_schema, t, "", Anchor::definition,
              what() + " (id " + std::to_string(of.id) + ") was removed; mark it (deprecated) instead of deleting it");
        continue;
      }
      if (nf->name != of.name) {
        const Field* elsewhere = olds.name(nf->name);
        if (elsewhere != nullptr && elsewhere->id != nf->id) continue;  // reported as that field's move
        rename(t, nf->name, Anchor::field,
               what() + " (id " + std::to_string(of.id) + ") was renamed to " + nf->name);
      }
      auto now = [&] { return "field " + t + "." + nf->name; };
      if (!same_type(of.type, nf->type)) {
        const std::string a = type_name(o_, of.type), b = type_name(n_, nf->type);
        error(Side::new_schema, t, nf->name, Anchor::field,
              peers() ? differs(now(), a, b) : now() + " changed type from " + a + " to " + b);
        continue;
      }
      follow(of.type, nf->type);
      if (of.default_value != nf->default_value)
        error(Side::new_schema, t, nf->name, Anchor::field,
              peers() ? now() + " has default " + of.default_value + in_old() + " but " + nf->default_value + in_new()
                      : now() + " changed its default from " + of.default_value + " to " + nf->default_value);
      if (nf->required && !of.required && old_writes())
        error(Side::new_schema, t, nf->name, Anchor::field,
              peers() ? now() + " is required" + in_new() + " but not" + in_old() + ", which may omit it"
                      : now() + " became required; peers built from the old schemas may omit it");
      if (of.required && !nf->required && new_writes())
        error(Side::new_schema, t, nf->name, Anchor::field,
              peers() ? now() + " is required" + in_old() + " but " + (nf->deprecated ? "deprecated" : "not") + in_new() +
                            "; " + opt_.old_name + " rejects messages without it"
                      : now() + (nf->deprecated ? " was deprecated" : " is no longer required") +
                            "; peers built from the old schemas reject messages without it");
    }
  }

  void compare_struct(const Definition& od, const Definition& nd) {
    bool same = od.size == nd.size && od.align == nd.align && od.fields.size() == nd.fields.size();
    for (std::size_t i = 0; same && i < od.fields.size(); ++i)
      same = od.fields[i].id == nd.fields[i].id && same_type(od.fields[i].type, nd.fields[i].type);
    if (!same) {
      error(Side::new_schema, nd.name, "", Anchor::definition,
            "struct " + nd.name + (peers() ? " has another layout" + in_old() + " than" + in_new() : " changed its layout") +
                "; structs can never change (define a new struct)");
      return;
    }
    for (std::size_t i = 0; i < od.fields.size(); ++i) {
      const auto& of = od.fields[i];
      const auto& nf = nd.fields[i];
      if (of.name != nf.name)
        rename(nd.name, nf.name, Anchor::field, "field " + nd.name + "." + of.name + " was renamed to " + nf.name);
      follow(of.type, nf.type);
    }
  }

  void compare_enum(const Definition& od, const Definition& nd) {
    const std::string& e = nd.name;
    if (od.underlying != nd.underlying) {
      const std::string a(to_string(od.underlying)), b(to_string(nd.underlying));
      error(Side::new_schema, e, "", Anchor::definition,
            peers() ? "enum " + e + " has underlying type " + a + in_old() + " but " + b + in_new()
                    : "enum " + e + " changed its underlying type from " + a + " to " + b);
      return;
    }
    const ValueIndex olds(od), news(nd);
    for (const auto& ov : od.values) {
      const std::string what = "enum value " + e + "." + ov.name;
      const EnumValue* same_name = news.name(ov.name);
      if (same_name != nullptr) {
        if (same_name->value != ov.value)
          error(Side::new_schema, e, ov.name, Anchor::definition,
                peers() ? differs(what, ov.value, same_name->value)
                        : what + " changed from " + ov.value + " to " + same_name->value);
        continue;
      }
      const EnumValue* same_value = news.value(ov.value);
      const bool name_taken = same_value != nullptr && olds.name(same_value->name) != nullptr;
      if (same_value != nullptr && !name_taken)
        rename(e, same_value->name, Anchor::definition, what + " (" + ov.value + ") was renamed to " + same_value->name);
      else if (opt_.history && old_writes())
        error(Side::new_schema, e, ov.name, Anchor::definition,
              what + " (" + ov.value + ") was removed; peers built from the old schemas still send it");
    }
  }

  void compare_union(const Definition& od, const Definition& nd) {
    const std::string& u = nd.name;
    const ValueIndex news(nd);
    for (const auto& ov : od.values) {
      if (ov.table < 0) continue;  // NONE
      const std::string what = "union member " + u + "." + ov.name;
      const EnumValue* nv = news.value(ov.value);
      const EnumValue* named = news.name(ov.name);
      if (named != nullptr && named->value != ov.value) {
        error(Side::new_schema, u, ov.name, Anchor::definition,
              (peers() ? differs(what, ov.value, named->value) : what + " moved from " + ov.value + " to " + named->value) +
                  " (members reordered or inserted); add new members at the end");
        continue;
      }
      if (nv == nullptr || nv->table < 0) {
        if (opt_.history && old_writes())
          error(Side::new_schema, u, ov.name, Anchor::definition,
                what + " (" + ov.value + ") was removed; peers built from the old schemas still send it");
        continue;
      }
      if (nv->name != ov.name) rename(u, nv->name, Anchor::definition, what + " (" + ov.value + ") was renamed to " + nv->name);
      const auto& ot = o_.definitions[static_cast<std::size_t>(ov.table)];
      const auto& nt = n_.definitions[static_cast<std::size_t>(nv->table)];
      if (ot.name != nt.name && nv->name != ov.name) {
        error(Side::new_schema, u, nv->name, Anchor::definition,
              (peers() ? differs(what + " (" + ov.value + ")", ot.name, nt.name)
                       : what + " (" + ov.value + ") is now " + nt.name + " instead of " + ot.name) +
                  "; peers would decode one as the other");
        continue;
      }
      if (done_.insert({static_cast<std::uint32_t>(ov.table), static_cast<std::uint32_t>(nv->table)}).second)
        pending_.push_back({static_cast<std::uint32_t>(ov.table), static_cast<std::uint32_t>(nv->table)});
    }
  }

  const Description& o_;
  const Description& n_;
  const CompareOptions& opt_;
  Comparison& out_;
  std::set<std::pair<std::uint32_t, std::uint32_t>> done_;
  std::map<const Definition*, FieldIndex> old_fields_, new_fields_;
  std::size_t steps_ = 0;
  bool over_budget_ = false;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> work_, pending_;
};

}  // namespace

Comparison compare(const Description& old_desc, const Description& new_desc, const CompareOptions& options) {
  Comparison out;
  Comparer(old_desc, new_desc, options, out).run();
  return out;
}

}  // namespace sage::schema
