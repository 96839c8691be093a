SELECT table_name || ':' || file || ':' || line AS entity_id,
        json_object('table', table_name, 'file', file, 'line', line, 'problems', to_json(problems)) AS detail
      FROM recon_rejects