SELECT table_name || ':' || file || ':' || CAST(line AS STRING) AS entity_id,
        JSON_OBJECT('table', table_name, 'file', file, 'line', line, 'problems', to_json(problems)) AS detail
      FROM recon_rejects