import Foundation

/// Aliases: promote, rollback, history. Every move appends to alias_history in the same
/// transaction that moves the alias, under the task's row lock.
extension RegistryStore {
    public func aliasTarget(task: String, alias: String, on conn: Connection) throws -> Int? {
        try conn.execute("""
            SELECT a.version FROM aliases a JOIN tasks t ON t.id = a.task_id WHERE t.name = $1 AND a.name = $2
            """, [.text(task), .text(alias)]).first?.int("version")
    }

    /// Points `alias` at `version` (nil removes it) and records the move. No-op when unchanged.
    @discardableResult
    func setAlias(taskID: Int, task: String, alias: String, to version: Int?, action: AliasMove.Action,
                  actor: String, reason: String, on conn: Connection) throws -> AliasMove? {
        let current = try conn.execute("SELECT version FROM aliases WHERE task_id = $1 AND name = $2",
                                       [.int(taskID), .text(alias)]).first?.int("version")
        if current == version { return nil }
        if let version {
            try conn.execute("""
                INSERT INTO aliases (task_id, name, version) VALUES ($1, $2, $3)
                ON CONFLICT (task_id, name) DO UPDATE SET version = EXCLUDED.version, updated_at = now()
                """, [.int(taskID), .text(alias), .int(version)])
        } else {
            try conn.execute("DELETE FROM aliases WHERE task_id = $1 AND name = $2", [.int(taskID), .text(alias)])
        }
        TestPausePoint.reach("alias.moved")
        let r = try conn.execute("""
            INSERT INTO alias_history (task_id, alias, from_version, to_version, action, actor, reason)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            RETURNING id, \(Self.iso("created_at")) AS created_at
            """, [.int(taskID), .text(alias), .int(current), .int(version), .text(action.rawValue), .text(actor), .text(reason)])
        return AliasMove(id: try r[0].int("id"), task: task, alias: alias, fromVersion: current, toVersion: version,
                         action: action, actor: actor, reason: reason, createdAt: try r[0].string("created_at"))
    }

    /// Points `alias` at `version`. Returns nil when it already pointed there (nothing recorded).
    /// `action` is `.promote` for people and `.auto` for the job daemon's auto-promotion.
    public func promote(task: String, version: Int, alias: String, actor: String, reason: String,
                        action: AliasMove.Action = .promote, on conn: Connection) throws -> AliasMove? {
        try Names.validateAlias(alias)
        if alias == Names.latest { throw RegistryError.reservedAlias(alias) }
        return try conn.withTransaction { c in
            let taskID = try lockTask(task, on: c)
            let v = try self.version(task: task, number: version, on: c)
            if v.archived { throw RegistryError.versionArchived(task: task, version: version) }
            return try setAlias(taskID: taskID, task: task, alias: alias, to: version, action: action,
                                actor: actor, reason: reason, on: c)
        }
    }

    /// Returns `alias` to the version it had before its most recent promotion still in effect.
    ///
    /// The history is replayed as a stack: a promotion (or automatic move) pushes the version
    /// the alias left, a rollback pops one. So promote 1, 2, 3 then rollback gives 2, a second
    /// rollback 1, a third fails: before 1 the alias did not exist.
    public func rollback(task: String, alias: String, actor: String, reason: String,
                         on conn: Connection) throws -> AliasMove {
        try Names.validateAlias(alias)
        if alias == Names.latest { throw RegistryError.reservedAlias(alias) }
        return try conn.withTransaction { c in
            let taskID = try lockTask(task, on: c)
            var stack: [Int?] = []
            for e in try c.execute("""
                SELECT from_version, action FROM alias_history WHERE task_id = $1 AND alias = $2 ORDER BY id
                """, [.int(taskID), .text(alias)]).rows {
                if try e.string("action") == AliasMove.Action.rollback.rawValue {
                    _ = stack.popLast()
                } else {
                    stack.append(try e.optionalInt("from_version"))
                }
            }
            guard let top = stack.last, let target = top else {
                throw RegistryError.nothingToRollBack(task: task, alias: alias)
            }
            if try self.version(task: task, number: target, on: c).archived {
                throw RegistryError.rollbackTargetArchived(task: task, alias: alias, version: target)
            }
            guard let move = try setAlias(taskID: taskID, task: task, alias: alias, to: target, action: .rollback,
                                          actor: actor, reason: reason, on: c) else {
                throw RegistryError.nothingToRollBack(task: task, alias: alias)
            }
            return move
        }
    }

    /// Every move of the task's aliases (or of one alias), oldest first.
    public func history(task: String, alias: String? = nil, on conn: Connection) throws -> [AliasMove] {
        guard try self.task(named: task, on: conn) != nil else { throw RegistryError.notFound(kind: "task", name: task) }
        return try conn.execute("""
            SELECT h.id, h.alias, h.from_version, h.to_version, h.action, h.actor, h.reason,
                   \(Self.iso("h.created_at")) AS created_at
            FROM alias_history h JOIN tasks t ON t.id = h.task_id
            WHERE t.name = $1 AND ($2::text IS NULL OR h.alias = $2::text) ORDER BY h.id
            """, [.text(task), .string(alias)]).rows.map { r in
            AliasMove(id: try r.int("id"), task: task, alias: try r.string("alias"),
                      fromVersion: try r.optionalInt("from_version"), toVersion: try r.optionalInt("to_version"),
                      action: AliasMove.Action(rawValue: try r.string("action")) ?? .auto,
                      actor: try r.string("actor"), reason: try r.string("reason"), createdAt: try r.string("created_at"))
        }
    }
}
